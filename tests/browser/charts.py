"""What a page's charts hold and whether they drew anything, read from the browser."""

# For every canvas: its Chart.js chart's points per dataset, its axes' tick labels, and how many
# pixels it painted (a blank chart paints none).
CHARTS_JS = """
const found = {};
for (const canvas of document.querySelectorAll('canvas')) {
  const chart = Chart.getChart(canvas);
  const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) { if (pixels[i]) painted++; }
  found[canvas.id] = chart ? {
    type: chart.config.type,
    points: chart.data.datasets.map(d => d.data.length),
    labels: chart.data.datasets.map(d => d.label),
    sums: chart.data.datasets.map(d => d.data.reduce((a, v) => a + (typeof v === 'number' ? v : 0), 0)),
    x: (chart.scales.x && chart.scales.x.ticks || []).map(t => String(t.label)),
    y: (chart.scales.y && chart.scales.y.ticks || []).map(t => String(t.label)),
    painted } : {painted, missing: true};
}
return found;
"""


def charts(driver) -> dict:
    return driver.execute_script(CHARTS_JS)


def drawn(info: dict, min_pixels: int = 2000) -> bool:
    return not info.get("missing") and info["painted"] >= min_pixels and all(info["points"])
