// The mood timeline: valence per day as a line and the emotions' shares
// per day as stacked bars (Chart.js), over a chosen range, with the same
// numbers as a table for screen readers.

import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
} from "chart.js";
import { useEffect, useRef, useState } from "preact/hooks";
import type { Day } from "./api";
import { ErrorBox, ScreenTitle, useLoad } from "./components";
import { useApp } from "./context";
import { formatDay } from "./i18n";
import { emotionName } from "./messages";

Chart.register(
  BarController,
  BarElement,
  CategoryScale,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
);

const EMOTIONS = ["joy", "love", "surprise", "neutral", "fear", "sadness", "anger"] as const;
/** Colours told apart with most colour-vision deficiencies (Okabe–Ito). */
const COLOURS: Record<string, string> = {
  joy: "#E69F00",
  love: "#CC79A7",
  surprise: "#56B4E9",
  neutral: "#999999",
  fear: "#009E73",
  sadness: "#0072B2",
  anger: "#D55E00",
};

type Preset = "7" | "30" | "90" | "365" | "custom";

/** The longest range drawn day by day; a longer one shows only the days with entries. */
const MAX_AXIS_DAYS = 400;

/**
 * The days on the charts' axis: every day of the range, so that gaps
 * show, or only the days with entries when the range is open or longer
 * than [`MAX_AXIS_DAYS`].
 */
function axisDays(from: string, to: string, days: Day[]): string[] {
  const start = Date.parse(`${from}T00:00:00Z`);
  const end = Date.parse(`${to}T00:00:00Z`);
  const n = Math.round((end - start) / 86_400_000) + 1;
  if (!Number.isFinite(n) || n < 1 || n > MAX_AXIS_DAYS) return days.map((d) => d.date);
  return Array.from({ length: n }, (_, i) => new Date(start + i * 86_400_000).toISOString().slice(0, 10));
}

/** The UTC day `days` before today, as `YYYY-MM-DD`. */
function utcDay(daysAgo: number): string {
  const d = new Date(Date.now() - daysAgo * 86_400_000);
  return d.toISOString().slice(0, 10);
}

export function TimelineScreen() {
  const { api, t } = useApp();
  const [preset, setPreset] = useState<Preset>("30");
  const [from, setFrom] = useState(utcDay(29));
  const [to, setTo] = useState(utcDay(0));

  const choose = (p: Preset) => {
    setPreset(p);
    if (p !== "custom") {
      setFrom(utcDay(Number(p) - 1));
      setTo(utcDay(0));
    }
  };

  const [found, error] = useLoad(() => api.timeline(from || null, to || null), [api, from, to]);
  const days = found?.days ?? null;

  return (
    <section>
      <ScreenTitle>{t("timeline.title")}</ScreenTitle>
      <div class="card range">
        <label>
          {t("timeline.range")}
          <select
            value={preset}
            data-testid="range"
            onChange={(e) => choose(e.currentTarget.value as Preset)}
          >
            {(["7", "30", "90", "365", "custom"] as const).map((p) => (
              <option key={p} value={p}>
                {t(`timeline.range.${p}`)}
              </option>
            ))}
          </select>
        </label>
        {preset === "custom" && (
          <>
            <label>
              {t("timeline.from")}
              <input type="date" value={from} max={to} onChange={(e) => setFrom(e.currentTarget.value)} />
            </label>
            <label>
              {t("timeline.to")}
              <input type="date" value={to} min={from} onChange={(e) => setTo(e.currentTarget.value)} />
            </label>
          </>
        )}
      </div>
      <ErrorBox message={error} />
      {days && days.length === 0 && <p class="muted">{t("timeline.empty")}</p>}
      {days && days.length > 0 && <Charts days={days} axis={axisDays(from, to, days)} />}
    </section>
  );
}

function Charts({ days, axis }: { days: Day[]; axis: string[] }) {
  const { t } = useApp();
  const byDate = new Map(days.map((d) => [d.date, d]));
  const labels = axis.map((date) => formatDay(t, date));
  const valence = axis.map((date) => byDate.get(date)?.mean_valence ?? null);
  const share = (emotion: string) =>
    axis.map((date) => {
      const d = byDate.get(date);
      return d && d.entries > 0 ? (d.emotion_counts[emotion] ?? 0) / d.entries : null;
    });
  return (
    <>
      <p data-testid="day-count">{t("timeline.days", { n: days.length })}</p>
      <ChartFigure
        testId="valence-chart"
        caption={t("timeline.valence")}
        make={(canvas) =>
            new Chart(canvas, {
              type: "line",
              data: {
                labels,
                datasets: [
                  {
                    label: t("timeline.mean"),
                    data: valence,
                    spanGaps: true,
                    borderColor: "#0072B2",
                    backgroundColor: "#0072B2",
                    tension: 0.25,
                  },
                ],
              },
              options: {
                maintainAspectRatio: false,
                animation: false,
                scales: { y: { min: -1, max: 1 } },
                plugins: { legend: { display: false } },
              },
            })
          }
      />
      <ChartFigure
        testId="emotion-chart"
        caption={t("timeline.emotions")}
        make={(canvas) =>
            new Chart(canvas, {
              type: "bar",
              data: {
                labels,
                datasets: EMOTIONS.map((emotion) => ({
                  label: emotionName(t, emotion),
                  data: share(emotion),
                  backgroundColor: COLOURS[emotion],
                })),
              },
              options: {
                maintainAspectRatio: false,
                animation: false,
                scales: { x: { stacked: true }, y: { stacked: true, min: 0, max: 1 } },
              },
            })
          }
      />
      <details class="card">
        <summary>{t("timeline.table")}</summary>
        <table data-testid="timeline-table">
          <thead>
            <tr>
              <th scope="col">{t("timeline.date")}</th>
              <th scope="col">{t("timeline.entries")}</th>
              <th scope="col">{t("timeline.mean")}</th>
              <th scope="col">{t("timeline.dominant")}</th>
            </tr>
          </thead>
          <tbody>
            {days.map((d) => (
              <tr key={d.date}>
                <th scope="row">{formatDay(t, d.date)}</th>
                <td>{d.entries}</td>
                <td>{d.mean_valence.toFixed(2)}</td>
                <td>{emotionName(t, d.dominant_emotion)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </details>
    </>
  );
}

/** A captioned canvas with a chart made by `make`, remade when it changes; says how many days it drew a value for. */
function ChartFigure(props: { make: (c: HTMLCanvasElement) => Chart; testId: string; caption: string }) {
  const { make, testId, caption } = props;
  const ref = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    const canvas = ref.current;
    if (!canvas) return;
    const chart = make(canvas);
    const values = chart.data.datasets[0]?.data ?? [];
    canvas.dataset.days = String(chart.data.labels?.length ?? 0);
    canvas.dataset.points = String(values.filter((v) => v !== null).length);
    return () => chart.destroy();
  });
  return (
    <figure class="card chart">
      <figcaption>{caption}</figcaption>
      <div class="canvas-box">
        <canvas ref={ref} data-testid={testId} role="img" aria-label={caption} />
      </div>
    </figure>
  );
}
