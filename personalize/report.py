"""The pages of `talkface evaluate`: one actor's report.html and a batch's summary tables.

Everything works offline: the plots are PNGs drawn with matplotlib's Agg renderer (through
`matplotlib.figure.Figure`, no pyplot state) and saved beside the page; no scripts, no CDN.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from audio2pose.metrics import ANGLE_NAMES
from recon3d.errors import InputError
from recon3d.video import VIDEO_FPS, atomic_path

REPORT_NAME = "report.html"
SUMMARY_NAME = "summary"
"""A batch writes OUT/summary.json, summary.md and summary.html."""
SUMMARY_VERSION = 1
PLOTS = {
    "pose_histograms.png": "Head-angle distributions of the real held-out frames and the generated video",
    "pose_curves.png": "Head angles over time",
    "mouth_aperture.png": "Mouth opening over time",
    "frames.png": "Held-out frames: real, rendered from their real coefficients, refined",
}
REAL, GENERATED, BASELINE = "#222222", "#e0701a", "#3a76b8"


@dataclass
class Measured:
    """What a report shows beside metrics.json: the series and images behind the plots."""

    metrics: dict[str, float | None]
    """metrics.json's `metrics` (every key of its schema; None where not measured)."""
    real_degrees: np.ndarray
    """(T, 3) the held-out frames' reconstructed pitch, yaw, roll."""
    generated_degrees: np.ndarray
    """(G, 3) the head pose the generated video was rendered with."""
    static_degrees: np.ndarray
    """(3,) the still-head baseline: the training frames' mean pose."""
    real_aperture: np.ndarray
    """(T,) the real frames' inner-lip aperture."""
    generated_aperture: np.ndarray
    """(G,) the generated video's (re-tracked)."""
    samples: dict[str, np.ndarray]
    """Rows of the frame strip: name -> (K, S, S, 3) face regions of the `sample_frames`."""
    sample_frames: np.ndarray
    """(K,) held-out frame indices of the strip's columns."""


def fmt(key: str, value: float | None) -> str:
    """A metric as the tables show it."""
    if value is None:
        return "n/a"
    if key.startswith(("psnr", "sharpness")) or "w1" in key:
        return f"{value:.2f}" if abs(value) < 100 else f"{value:.0f}"
    return f"{value:.3f}"


# ------------------------------------------------------------------------------------ plots


def figure_class() -> type:
    """matplotlib's `Figure`, or an InputError saying how to install it (the `eval` extra)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise InputError(
            "the evaluation report's plots need matplotlib: pip install 'talkface[eval]' (scripts/setup.sh does)"
        ) from None
    return Figure


def _save(figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100, bbox_inches="tight")


def plot_pose_histograms(measured: Measured, path: Path) -> None:
    figure = figure_class()(figsize=(12, 3.4))
    for i, (axis, name) in enumerate(zip(figure.subplots(1, 3), ANGLE_NAMES)):
        real, generated = measured.real_degrees[:, i], measured.generated_degrees[:, i]
        bins = np.histogram_bin_edges(np.r_[real, generated, measured.static_degrees[i]], bins=24)
        axis.hist(real, bins, density=True, color=REAL, alpha=0.45, label="real")
        axis.hist(generated, bins, density=True, color=GENERATED, histtype="step", linewidth=2, label="generated")
        axis.axvline(measured.static_degrees[i], color=BASELINE, linestyle="--", label="still head (baseline)")
        w1 = measured.metrics[f"w1_{name}"]
        axis.set_title(f"{name}: W1 {fmt('w1', w1)} deg")
        axis.set_xlabel("degrees")
    figure.axes[0].set_ylabel("share of frames")
    figure.axes[0].legend(fontsize=8)
    _save(figure, path)


def _seconds(count: int) -> np.ndarray:
    return np.arange(count) / VIDEO_FPS


def plot_pose_curves(measured: Measured, path: Path) -> None:
    figure = figure_class()(figsize=(12, 6))
    axes = figure.subplots(3, 1, sharex=True)
    for i, (axis, name) in enumerate(zip(axes, ANGLE_NAMES)):
        axis.plot(_seconds(len(measured.real_degrees)), measured.real_degrees[:, i], color=REAL, label="real")
        axis.plot(
            _seconds(len(measured.generated_degrees)),
            measured.generated_degrees[:, i],
            color=GENERATED,
            label="generated",
        )
        axis.axhline(measured.static_degrees[i], color=BASELINE, linestyle="--", linewidth=1, label="still head")
        axis.set_ylabel(f"{name}, deg")
    axes[0].legend(fontsize=8, ncols=3)
    axes[-1].set_xlabel("seconds")
    _save(figure, path)


def plot_mouth(measured: Measured, path: Path, text: str | None) -> None:
    figure = figure_class()(figsize=(12, 3))
    axis = figure.subplots()
    axis.plot(_seconds(len(measured.real_aperture)), measured.real_aperture, color=REAL, label="real")
    axis.plot(
        _seconds(len(measured.generated_aperture)),
        measured.generated_aperture,
        color=GENERATED,
        label="generated" + (" (saying the text: other words)" if text else ""),
    )
    r = measured.metrics["mouth_r"]
    axis.set_title("inner-lip aperture" + ("" if r is None else f": r {fmt('mouth_r', r)}"))
    axis.set_xlabel("seconds")
    axis.set_ylabel("over eye-corner distance")
    axis.legend(fontsize=8)
    _save(figure, path)


def plot_frames(measured: Measured, path: Path) -> None:
    rows = list(measured.samples)
    columns = len(measured.sample_frames)
    figure = figure_class()(figsize=(1.8 * columns, 1.9 * len(rows)))
    axes = np.asarray(figure.subplots(len(rows), columns, squeeze=False))
    for r, name in enumerate(rows):
        for c, frame in enumerate(measured.sample_frames):
            axis = axes[r, c]
            axis.imshow(measured.samples[name][c], interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            if r == 0:
                axis.set_title(f"{frame / VIDEO_FPS:.1f} s", fontsize=9)
        axes[r, 0].set_ylabel({"raw": "render"}.get(name, name))
    _save(figure, path)


# ------------------------------------------------------------------------------------ tables


def _table_html(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{cell}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _table_md(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _grid(
    metrics: dict,
    rows: list[tuple[str, str]],
    columns: list[tuple[str, str]],
    name=lambda row, column: f"{column}{row}",
) -> tuple[list[str], list[list[str]]]:
    """A table of `metrics`: rows x columns, each (label, part of the key), the key of a cell
    being `name(row part, column part)`; empty where there is no such metric."""
    header = ["", *(label for label, _ in columns)]
    body = [
        [
            label,
            *(
                fmt(name(row, column), metrics[name(row, column)]) if name(row, column) in metrics else ""
                for _, column in columns
            ),
        ]
        for label, row in rows
    ]
    return header, body


POSE_ROWS = [
    ("HS", "hs"),
    *((f"HS {a}", f"hs_{a}") for a in ANGLE_NAMES),
    *((f"W1 {a}, deg", f"w1_{a}") for a in ANGLE_NAMES),
    *((f"velocity W1 {a}, deg/s", f"velocity_w1_{a}") for a in ANGLE_NAMES),
]
POSE_COLUMNS = [("generated", ""), ("baseline: still head", "static_"), ("baseline: training replayed", "replay_")]
MOUTH_ROWS = [("mouth-opening r (higher is better)", "mouth_r"), ("LMD (lower is better)", "lmd")]
MOUTH_COLUMNS = [("generated", ""), ("baseline: training replayed", "replay_")]
EYE_ROWS = [
    ("blinks a minute", "blink_rate"),
    ("blink duration, ms", "blink_ms"),
    ("longest half-closed eye, ms", "half_closed_ms"),
    ("eye-opening jumps a minute", "eye_steps"),
]
EYE_COLUMNS = [("generated", ""), ("real held-out frames", "real_")]
IMAGE_ROWS = [
    ("PSNR, dB", "psnr"),
    ("SSIM", "ssim"),
    ("sharpness (Laplacian variance)", "sharpness"),
    ("identity similarity", "identity"),
    ("seam", "seam"),
]
IMAGE_COLUMNS = [
    ("synthesized", "synthesized"),
    ("render", "raw"),
    ("refined", "refined"),
    ("real frames", "real"),
    ("generated video", "generated"),
]


# ------------------------------------------------------------------------------------ report.html

STYLE = """
body { font-family: sans-serif; max-width: 1200px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 0.8em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f2f2f2; }
img, video { max-width: 100%; display: block; margin: 0.6em 0; }
.facts td { text-align: left; }
.note { color: #555; font-size: 0.92em; }
"""


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def _facts(record: dict) -> list[list[str]]:
    actor, heldout, generated = record["actor"], record["heldout"], record["generated"]
    learned = "all of it" if actor["end"] is None else f"its first {actor['end']:g} s"
    part = "a separate video" if heldout["start"] is None else f"from {heldout['start']:g} s on"
    said = "the held-out speech" if heldout["text"] is None else f"the text “{heldout['text']}”"
    made = (
        "synthesized from the actor's frames"
        if generated["synthesis"] == "image"
        else "rendered and refined"
        if generated["refined"]
        else "rendered"
    )
    rows = [
        ["actor", f"{actor['path']} ({actor['face_model']} face model)"],
        ["learned from", f"{actor['source']}, {learned}"],
        ["held out", f"{heldout['video']}, {part}: {heldout['frames']} frames ({heldout['seconds']:g} s)"],
        [
            "generated",
            f"{said}; {generated['frames']} frames, pose mode {generated['pose_mode']}, face {made}, "
            f"face found in {100 * generated['face_detected']:.0f}% of frames, "
            f"made in {generated['seconds']:.1f} s",
        ],
        ["talkface", f"{record['toolkit_version']}, {record['created']}"],
    ]
    return [[html.escape(cell) for cell in row] for row in rows]


def _image(name: str) -> str:
    return f'<img src="{name}" alt="{html.escape(PLOTS[name])}">'


def write_report(folder: Path, record: dict, measured: Measured) -> None:
    """Draws the plots and writes report.html into `folder` (beside metrics.json)."""
    text = record["heldout"]["text"]
    plot_pose_histograms(measured, folder / "pose_histograms.png")
    plot_pose_curves(measured, folder / "pose_curves.png")
    plot_mouth(measured, folder / "mouth_aperture.png", text)
    plot_frames(measured, folder / "frames.png")
    metrics = record["metrics"]
    parts = [
        f"<h1>talkface evaluation: {html.escape(Path(record['actor']['path']).name)}</h1>",
        '<table class="facts"><tbody>'
        + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in _facts(record))
        + "</tbody></table>",
        "<h2>Head pose</h2>",
        '<p class="note">HS = mean over the angles of max(0, 1 - W1 / 10 deg), W1 = Wasserstein-1 distance between '
        "the real and the generated per-frame angle distributions; velocity W1 compares the frame-to-frame changes. "
        "Baselines: a still head at the training frames' mean pose, and the training frames' poses replayed.</p>",
        _table_html(*_grid(metrics, POSE_ROWS, POSE_COLUMNS)),
        _image("pose_histograms.png"),
        _image("pose_curves.png"),
        "<h2>Lip sync</h2>",
        '<p class="note">Inner-lip aperture (over the outer-eye-corner distance) of the re-tracked generated video '
        "against the real frames; LMD = mean distance of the 20 mouth landmarks (roll removed, centred, in eye-corner "
        "units)." + (" Not measured: the text says other words than the real frames." if text else "") + "</p>",
        _table_html(*_grid(metrics, MOUTH_ROWS, MOUTH_COLUMNS)),
        _image("mouth_aperture.png"),
        "<h2>Eyes</h2>",
        '<p class="note">Eye aspect ratio of the unsmoothed mediapipe lids, both eyes, over the open eye (its 80th '
        "percentile): a blink is a run below 55%; a run below 75% for over 400 ms is an eye held half closed.</p>",
        _table_html(*_grid(metrics, EYE_ROWS, EYE_COLUMNS)),
        "<h2>Image, driven by the real coefficients</h2>",
        "<p class=\"note\">The actor's face made at each held-out frame's reconstructed coefficients, against the "
        "real frame inside the face box, at the video's resolution: synthesized from the actor's training frames "
        "(generate's default: a keyframe-matched training frame warped, the mouth interior from the training frame "
        "whose mouth is nearest), and the face model rendered with the actor's albedo, raw and refined, blended into "
        "the real frame's own crop; identity = dlib 128-d feature cosine to the actor's training frames. Seam = "
        "gradient along the face's outline over that inside it (the real frames': the real edge's level).</p>",
        _table_html(*_grid(metrics, IMAGE_ROWS, IMAGE_COLUMNS, lambda row, column: f"{row}_{column}")),
        _image("frames.png"),
    ]
    if text is not None:
        parts += [
            "<h2>Voice</h2>",
            _table_html(
                ["", "matched voice", "baseline: Flite voice unmatched"],
                [
                    [
                        "speaker similarity to the real speech",
                        fmt("speaker", metrics["speaker_similarity"]),
                        fmt("speaker", metrics["speaker_similarity_unmatched"]),
                    ]
                ],
            ),
        ]
    parts += [
        "<h2>Generated video</h2>",
        f'<video controls preload="metadata" src="{record["generated"]["video"]}"></video>',
        '<p class="note">All numbers are in metrics.json beside this page.</p>',
    ]
    with atomic_path(folder / REPORT_NAME) as tmp:
        tmp.write_text(_page(f"talkface evaluation: {record['actor']['source']}", "\n".join(parts)), encoding="utf-8")


# ------------------------------------------------------------------------------------ batch summary

SUMMARY_COLUMNS = [
    ("HS", "hs"),
    ("HS still", "static_hs"),
    ("HS replay", "replay_hs"),
    *((f"W1 {a}", f"w1_{a}") for a in ANGLE_NAMES),
    ("mouth r", "mouth_r"),
    ("mouth r replay", "replay_mouth_r"),
    ("LMD", "lmd"),
    ("blinks/min", "blink_rate"),
    ("blinks/min real", "real_blink_rate"),
    ("PSNR synthesized", "psnr_synthesized"),
    ("PSNR render", "psnr_raw"),
    ("PSNR refined", "psnr_refined"),
    ("SSIM synthesized", "ssim_synthesized"),
    ("sharpness synthesized", "sharpness_synthesized"),
    ("sharpness generated", "sharpness_generated"),
    ("sharpness real", "sharpness_real"),
    ("identity synthesized", "identity_synthesized"),
    ("identity generated", "identity_generated"),
]
"""The per-actor table's columns (label, metric); the aggregate table has every metric."""


def aggregate(rows: list[dict]) -> dict[str, dict]:
    """Per metric: mean, min, max over the actors that have a value, and how many do."""
    keys = list(dict.fromkeys(key for row in rows for key in row.get("metrics", {})))
    result = {}
    for key in keys:
        values = [row["metrics"][key] for row in rows if row.get("metrics", {}).get(key) is not None]
        result[key] = (
            {"mean": round(float(np.mean(values)), 5), "min": min(values), "max": max(values), "n": len(values)}
            if values
            else {"mean": None, "min": None, "max": None, "n": 0}
        )
    return result


def _summary_tables(rows: list[dict], totals: dict, link: bool) -> tuple[tuple, tuple]:
    """(header, rows) of the per-actor table (with mean / min / max rows) and the aggregate table."""
    header = ["actor", *(label for label, _ in SUMMARY_COLUMNS), "seconds"]
    body = []
    for row in rows:
        name = html.escape(row["name"]) if link else row["name"]
        if link and "metrics" in row:
            name = f'<a href="{html.escape(row["report"])}">{name}</a>'
        if "metrics" in row:
            body.append(
                [name, *(fmt(key, row["metrics"].get(key)) for _, key in SUMMARY_COLUMNS), f"{row['seconds']:.0f}"]
            )
        else:
            error = html.escape(row["error"]) if link else row["error"].replace("|", "\\|")
            body.append([name, f"failed: {error}", *[""] * len(SUMMARY_COLUMNS)])
    for stat in ("mean", "min", "max"):
        body.append(
            [
                f"<b>{stat}</b>" if link else f"**{stat}**",
                *(fmt(key, totals.get(key, {}).get(stat)) for _, key in SUMMARY_COLUMNS),
                "",
            ]
        )
    full = [
        [key, *(fmt(key, value[stat]) for stat in ("mean", "min", "max")), str(value["n"])]
        for key, value in totals.items()
    ]
    return (header, body), (["metric", "mean", "min", "max", "actors"], full)


def write_summary(folder: Path, rows: list[dict]) -> dict:
    """OUT/summary.json (every actor's metrics or error, and per metric mean / min / max over the
    actors), summary.md and summary.html (the tables); returns the summary."""
    totals = aggregate(rows)
    summary = {
        "summary_version": SUMMARY_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "actors": rows,
        "failed": [row["name"] for row in rows if "error" in row],
        "aggregate": totals,
    }
    with atomic_path(folder / f"{SUMMARY_NAME}.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1) + "\n")
    done = len(rows) - len(summary["failed"])
    title = f"talkface evaluation: {done} of {len(rows)} actors"
    per_actor, full = _summary_tables(rows, totals, link=False)
    markdown = [f"# {title}", "", _table_md(*per_actor), "", "## every metric", "", _table_md(*full), ""]
    with atomic_path(folder / f"{SUMMARY_NAME}.md") as tmp:
        tmp.write_text("\n".join(markdown), encoding="utf-8")
    per_actor, full = _summary_tables(rows, totals, link=True)
    page = [
        f"<h1>{html.escape(title)}</h1>",
        _table_html(*per_actor),
        "<h2>Every metric</h2>",
        _table_html(*full),
        '<p class="note">Metrics as in each report\'s metrics.json (docs/commands.md: talkface evaluate).</p>',
    ]
    with atomic_path(folder / f"{SUMMARY_NAME}.html") as tmp:
        tmp.write_text(_page(title, "\n".join(page)), encoding="utf-8")
    return summary
