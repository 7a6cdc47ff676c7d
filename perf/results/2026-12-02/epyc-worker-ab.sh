# Alternate: old 1 worker, old 2 workers, new 1, new 2; N rounds; 8 epochs; print images/s (epochs 2..)
cd /tmp/perf
run() { # tree world out
  d=$(mktemp -d /dev/shm/t-XXXX); rm -rf $3; mkdir -p $3; port=$((20000+RANDOM%20000))
  for r in $(seq 0 $(($2-1))); do
    env PYTHONPATH=$1 MINIKF_SHM_DIR=$d CUDA_VISIBLE_DEVICES= MASTER_ADDR=127.0.0.1 MASTER_PORT=$port WORLD_SIZE=$2 RANK=$r python -m minikf.workload.train_worker --data /tmp/perf/data --out $3 --epochs 8 --batch-size 64 --lr 0.012 --schedule onecycle --augment > $3/out-$r.log 2> $3/err-$r.log &
  done; wait; rm -rf $d
  python -c "
import json,sys
rows=[json.loads(l) for l in open('$3/metrics.jsonl')][1:]
imgs=sum(r['images_per_s']*r['seconds'] for r in rows); secs=sum(r['seconds'] for r in rows)
print(json.dumps({'tree':'$1','world':$2,'ips':imgs/secs,'loss':rows[-1]['loss']}))"
}
for i in $(seq 1 $1); do
  run /tmp/perf/old 1 /tmp/perf/j1; run /tmp/perf/old 2 /tmp/perf/j2; run /work/main 1 /tmp/perf/j3; run /work/main 2 /tmp/perf/j4
done
