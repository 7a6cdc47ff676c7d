"""`minikf images load`: one code path for a kind cluster and the shared cluster's script.
The real load into the shared cluster runs in CI (.ci/setup.d/40-k8s.sh); here the commands and
the errors a user meets."""

import pytest

from minikf.appliance.imageload import LoadTarget, load_images
from minikf.appliance.tools import Tools
from minikf.runtime.errors import MinikfError


def test_one_command_loads_every_image_for_either_kind_of_cluster(tmp_path):
    script = tmp_path / "cluster.sh"
    script.write_text("#!/bin/sh\n")
    images = ["minikf/runtime:latest", "minikf/server:latest"]
    assert LoadTarget(kind_cluster="minikf").command(images) == (
        "kind", ["load", "docker-image", *images, "--name", "minikf"])
    assert LoadTarget(cluster_script=script).command(images) == ("bash", [str(script), "load-image", *images])


def test_a_target_must_be_one_cluster_that_exists(tmp_path):
    with pytest.raises(MinikfError, match="give --kind NAME or --cluster-script PATH"):
        LoadTarget()
    with pytest.raises(MinikfError, match="give --kind NAME or --cluster-script PATH"):
        LoadTarget(kind_cluster="a", cluster_script=tmp_path)
    with pytest.raises(MinikfError, match=f"cluster script {tmp_path / 'nope.sh'} does not exist"):
        LoadTarget(cluster_script=tmp_path / "nope.sh")


def test_an_image_not_built_is_named_with_what_to_run(tmp_path):
    """A fake `docker` on PATH answers as the real one does for an unknown image."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text("#!/bin/sh\necho 'Error: No such image: minikf/absent:1' >&2\nexit 1\n")
    (bin_dir / "docker").chmod(0o755)
    script = tmp_path / "cluster.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    expected = r"not in the local Docker Engine: minikf/absent:1; run `minikf images build` first"
    with pytest.raises(MinikfError, match=expected):
        load_images(["minikf/absent:1"], LoadTarget(cluster_script=script), Tools(path=str(bin_dir)),
                    say=lambda s: None)
