"""The evaluation's outputs: ``evaluation.json`` (settings, summary, every clip) and ``evaluation.md`` (a table)."""

import json
from pathlib import Path

SUMMARY_ROWS = {
    "mcd_db": "MCD-DTW (dB, lower is better)",
    "speaker_similarity": "speaker similarity (cosine, higher is better)",
    "wer": "WER (lower is better)",
    "cer": "CER (lower is better)",
    "clips": "clips",
}


def summary_table(result: dict) -> str:
    """The ``summary`` of an ``evaluate`` result as a two-column Markdown table."""
    lines = ["| metric | value |", "| --- | --- |"]
    for key, label in SUMMARY_ROWS.items():
        if key in result["summary"]:
            value = result["summary"][key]
            lines.append(f"| {label} | {value if isinstance(value, int) else f'{value:.4f}'} |")
    return "\n".join(lines) + "\n"


def write_report(result: dict, folder: str | Path) -> tuple[Path, Path]:
    """Write ``result`` to ``folder/evaluation.json`` and its summary table to ``folder/evaluation.md``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    json_path, table_path = folder / "evaluation.json", folder / "evaluation.md"
    json_path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    table_path.write_text(summary_table(result), encoding="utf-8")
    return json_path, table_path
