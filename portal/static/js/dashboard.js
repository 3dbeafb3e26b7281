// Draws the admin dashboard's charts from each canvas's data-chart attribute (no inline script:
// the Content-Security-Policy forbids it). The same figures are in a table beside every chart.
document.addEventListener("DOMContentLoaded", () => {
  if (typeof window.Chart === "undefined") return;
  // Colours with at least 3:1 contrast against white, in an order that stays distinguishable.
  const palette = ["#123d6a", "#b45309", "#0f766e", "#7e22ce", "#be123c", "#4d7c0f"];
  // In a right-to-left page (Arabic) the charts mirror: the first bar on the right, the value
  // axis on the right, legend and tooltips right to left. Numbers as the page writes them
  // (its language, Latin digits: portal/i18n.py).
  const page = document.documentElement;
  const rtl = page.dir === "rtl";
  const lang = `${page.lang || "en"}-u-nu-latn`;
  const number = new Intl.NumberFormat(lang, { maximumFractionDigits: 1 });
  const percent = new Intl.NumberFormat(lang, { style: "percent", maximumFractionDigits: 1 });
  const asPercent = (value) => percent.format(value / 100);
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
        locale: lang,
        plugins: {
          legend: {
            display: datasets.length > 1,
            position: "bottom",
            rtl,
            textDirection: rtl ? "rtl" : "ltr",
          },
          tooltip: {
            rtl,
            textDirection: rtl ? "rtl" : "ltr",
            callbacks: {
              label: (item) =>
                `${item.dataset.label}: ${
                  config.percent ? asPercent(item.parsed.y) : number.format(item.parsed.y)
                }`,
            },
          },
        },
        scales: {
          x: { reverse: rtl, ticks: { autoSkip: false, maxRotation: 45 } },
          y: {
            beginAtZero: true,
            position: rtl ? "right" : "left",
            max: config.percent ? 100 : undefined,
            ticks: {
              precision: 0,
              callback: (value) => (config.percent ? asPercent(value) : number.format(value)),
            },
          },
        },
      },
    });
  });
});
