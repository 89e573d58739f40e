"""``python -m lrnn.audio.evaluation GENERATED_DIR TRANSCRIPT_PATH [--reference_dir R] [--metrics [mcd,sim,wer]]
[--output_dir O]``: ``evaluate`` (with a progress bar), then the summary table on stdout."""

from jsonargparse import auto_cli

from .evaluate import evaluate
from .report import summary_table


def main(args: list[str] | None = None) -> None:
    """Parse ``args`` (default: the command line) into ``evaluate``'s arguments, run it, print the table."""
    print(summary_table(auto_cli(evaluate, args=args)), end="")


if __name__ == "__main__":
    main()
