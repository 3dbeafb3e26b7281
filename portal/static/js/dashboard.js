// Draws the admin dashboard's charts from each canvas's data-chart attribute (no inline script:
// the Content-Security-Policy forbids it). The same figures are in a table beside every chart.
document.addEventListener("DOMContentLoaded", () => {
  if (typeof window.Chart === "undefined") return;
  // Colours with at least 3:1 contrast against white, in an order that stays distinguishable.
  const palette = ["#123d6a", "#b45309", "#0f766e", "#7e22ce", "#be123c", "#4d7c0f"];
  document.querySelectorAll("canvas[data-chart]").forEach((canvas) => {
    let config;
    try {
      config = JSON.parse(canvas.dataset.chart);
    } catch (error) {
      return; // the table next to the chart still shows the figures
    }
    const datasets = config.series.map((series, index) => ({
      label: series.label,
      data: series.data,
      backgroundColor: palette[index % palette.length],
      borderRadius: 3,
    }));
    new window.Chart(canvas, {
      type: config.type || "bar",
      data: { labels: config.labels, datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        plugins: {
          legend: { display: datasets.length > 1, position: "bottom" },
          tooltip: {
            callbacks: config.percent
              ? { label: (item) => `${item.dataset.label}: ${item.formattedValue}%` }
              : {},
          },
        },
        scales: {
          x: { ticks: { autoSkip: false, maxRotation: 45 } },
          y: {
            beginAtZero: true,
            max: config.percent ? 100 : undefined,
            ticks: { precision: 0, callback: (value) => (config.percent ? `${value}%` : value) },
          },
        },
      },
    });
  });
});
