"""Voice cloning of a held-out speaker with a trained Lina-Speech: zero-shot, initial-state tuning, audio prompt.

The speaker's clips (an ``id|text`` transcript and ``<id>.wav`` files, e.g. one held-out voice of
``lrnn.audio.espeak_corpus``) are taken in transcript order: the first ones, up to ``--tune-seconds`` of audio, are
the speaker's enrolment data; the next ``--eval-clips`` are the test sentences. Conditions:

    zero_shot    the test texts with no voice state and no prompt (the voice the model falls back on)
    voice_state  the same texts from a rank-``--rank`` initial state tuned on the enrolment clips (``tune_voice``:
                 frozen model, Adam at ``--lr``), saved to OUT/voice.safetensors: no prompt in the context
    prompt       audio-prompt continuation: the first enrolment clip, its silent tail trimmed (training clips end
                 in silence before EOS, so an untrimmed prompt ends the output at once), encoded and forced as the
                 first frames, its text before the test text; the frames after the prompt are the output
    codec        the real test clips encoded and decoded by the codec: the ceiling the codec allows

Each output clip (OUT/<condition>/<id>.wav) is scored against the speaker's real clip of the same sentence with
``lrnn.audio.evaluation``: speaker similarity (Resemblyzer cosine, mean over the clips that have voiced audio;
``unscorable`` counts the others) and WER/CER of PocketSphinx's transcript against the text (over every clip). An
output shorter than the codec's analysis window (``n_fft`` samples, the shortest clip ``SpeechDataModule`` accepts)
is not decoded: it counts as unscorable, with an empty transcript (all words deleted). The ``real`` row gives the
recogniser's WER/CER on the real test clips: the floor of the WER column for this speaker (PocketSphinx hears
espeak-ng's voices poorly: about 0.8-1.0 WER on them). Generation is top-k sampling (``--top-k``), one generator a
test sentence seeded with ``--seed + index``, the same in every condition. Writes OUT/voice_cloning.json (settings,
splits, tuning losses, per-clip scores, summaries) and OUT/voice_cloning.md (the summary table, also printed). Needs
the ``audio-eval`` extra.

``--stage generate`` only tunes and synthesises (OUT/<condition>/<id>.wav and OUT/generation.json, no scoring
models needed: for a GPU machine without them); ``--stage score`` then scores those files on another machine with
the same ``--wav-dir``, ``--transcript`` and ``--out`` (the codec from ``--codec`` or the path generation.json
names); the default ``all`` does both.

    lrnn bench voice_cloning --checkpoint runs/audio/lina_espeak_multispeaker/version_0/checkpoints/last.ckpt \\
        --wav-dir runs/audio/espeak_corpus/f4 --transcript runs/audio/espeak_corpus/f4.psv
"""

import argparse
import json
import math
import time
from pathlib import Path

import torch
from lrnn.audio.codec.mel_kmeans import MelKMeansCodec
from lrnn.audio.data import read_transcript
from lrnn.audio.evaluation import PocketSphinxASR, SpeakerEncoder, error_rates, speaker_similarity
from lrnn.audio.lit import LinaSpeechModule
from lrnn.audio.model import LinaSpeech, VoiceState
from lrnn.audio.text import text_tokens
from lrnn.audio.voice_tuning import tune_voice
from lrnn.audio.wav import read_wav, trim_trailing_silence, write_wav

CONDITIONS = ("zero_shot", "voice_state", "prompt", "codec")
STAGES = ("all", "generate", "score")


def load_checkpoint(path: Path, codec_path: Path | None, device: str) -> tuple[LinaSpeech, MelKMeansCodec, str, bool]:
    """The model of a ``LinaSpeechModule`` checkpoint on ``device``, its codec (``codec_path``, or the one the
    checkpoint names) and that codec's path, and whether it was trained on phonemes (its data module's
    ``use_phonemes``, else False)."""
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {str(path)!r}: give a LinaSpeechModule checkpoint (.ckpt)")
    overrides = {} if codec_path is None else {"codec_path": str(codec_path)}
    module = LinaSpeechModule.load_from_checkpoint(path, map_location=device, weights_only=False, **overrides)
    saved = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    use_phonemes = bool(saved.get("datamodule_hyper_parameters", {}).get("use_phonemes", False))
    return module.model, module.load_codec(), str(module.hparams.codec_path), use_phonemes


def clip_audio(wav_dir: Path, transcript: Path, clip_id: str, sample_rate: int) -> torch.Tensor:
    """``wav_dir/<clip_id>.wav`` as ``[T]`` at ``sample_rate``; a clear error when the transcript's clip has none."""
    path = wav_dir / f"{clip_id}.wav"
    if not path.is_file():
        raise FileNotFoundError(f"clip {clip_id!r} of {transcript} has no audio at {str(path)!r}")
    return read_wav(path, sample_rate)


def speaker_clips(wav_dir: Path, transcript: Path, codec: MelKMeansCodec, use_phonemes: bool) -> list[dict]:
    """Every clip of the transcript as ``{"id", "text", "text_tokens" [L], "wav" [T] at 24 kHz, "codes" [q, F]}``."""
    clips = []
    for clip_id, text in read_transcript(transcript).items():
        wav = clip_audio(wav_dir, transcript, clip_id, codec.sample_rate)
        tokens = text_tokens(text, use_phonemes=use_phonemes)
        clips.append({"id": clip_id, "text": text, "text_tokens": tokens, "wav": wav, "codes": codec.encode(wav)})
    return clips


def split_clips(clips: list[dict], tune_seconds: float, eval_clips: int, sample_rate: int) -> tuple[list, list]:
    """The first clips up to ``tune_seconds`` of audio (at least one) for tuning, the next ``eval_clips`` to test."""
    total, n_tune = 0.0, 0
    while n_tune < len(clips) and (n_tune == 0 or total < tune_seconds):
        total += len(clips[n_tune]["wav"]) / sample_rate
        n_tune += 1
    tune, test = clips[:n_tune], clips[n_tune : n_tune + eval_clips]
    if not test:
        raise ValueError(
            f"{len(clips)} clips leave none to test after {n_tune} for tuning ({total:.1f} s): lower --tune-seconds"
            " or give more clips"
        )
    return tune, test


def synthesise(
    model: LinaSpeech,
    condition: str,
    test: list[dict],
    voice: VoiceState | None,
    prompt: dict,
    max_frames: int,
    top_k: int,
    seed: int,
    use_phonemes: bool,
) -> list[torch.Tensor]:
    """Codes ``[q, F_i]`` (``F_i`` may be 0) of each test sentence under ``condition`` (not ``codec``)."""
    device = next(model.parameters()).device
    generators = [torch.Generator(device).manual_seed(seed + index) for index in range(len(test))]
    texts = [clip["text_tokens"] for clip in test]
    if condition == "zero_shot":
        return model.generate(texts, max_frames, top_k=top_k, generator=generators)
    if condition == "voice_state":
        states = [state.detach() for state in voice.initial_states()]
        return model.generate(texts, max_frames, top_k=top_k, initial_states=states, generator=generators)
    frames = prompt["codes"].shape[1]
    texts = [text_tokens(f"{prompt['text']} {clip['text']}", use_phonemes=use_phonemes) for clip in test]
    codes = model.generate(
        texts, frames + max_frames, top_k=top_k, prompt=[prompt["codes"]] * len(test), generator=generators
    )
    return [clip_codes[:, frames:] for clip_codes in codes]


class Scorer:
    """Speaker similarity to a real clip and WER/CER against a text, with the packaged models of ``audio-eval``."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.encoder, self.asr = SpeakerEncoder(), PocketSphinxASR()

    def embed(self, wav: torch.Tensor) -> torch.Tensor | None:
        """Speaker embedding ``[256]`` of ``wav [T]``, None when it has no voiced audio."""
        try:
            return self.encoder.embed(wav, self.sample_rate)
        except ValueError:
            return None

    def score(self, wav: torch.Tensor | None, reference: torch.Tensor | None, text: str) -> dict:
        """``{"seconds", "speaker_similarity" (None when unscorable), "transcript", "wer", "cer"}`` of ``wav [T]``
        (None: no output) against the ``reference`` embedding and the input ``text``."""
        embedding = None if wav is None or reference is None else self.embed(wav)
        transcript = "" if wav is None else self.asr.transcribe(wav, self.sample_rate)
        return {
            "seconds": 0.0 if wav is None else len(wav) / self.sample_rate,
            "speaker_similarity": None if embedding is None else speaker_similarity(embedding, reference),
            "transcript": transcript,
            **error_rates([transcript], [text]),
        }


def summarise(clips: dict[str, dict], texts: list[str]) -> dict:
    """Mean speaker similarity over the scorable clips, WER/CER over all clips together, clip counts."""
    similarities = [clip["speaker_similarity"] for clip in clips.values() if clip["speaker_similarity"] is not None]
    return {
        "speaker_similarity": sum(similarities) / len(similarities) if similarities else None,
        **error_rates([clip["transcript"] for clip in clips.values()], texts),
        "clips": len(clips),
        "unscorable": len(clips) - len(similarities),
    }


def summary_table(report: dict) -> str:
    """One Markdown row per condition (speaker similarity: cosine, higher is better; WER, CER; clips; unscorable)
    and the ``real`` row of the real clips' WER and CER."""
    lines = [
        "| condition | speaker similarity | WER | CER | clips | unscorable |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    rows = {name: result["summary"] for name, result in report["conditions"].items()}
    rows["real"] = {"speaker_similarity": None, **report["real"], "clips": len(report["test_clips"]), "unscorable": 0}
    for name, summary in rows.items():
        similarity = "-" if summary["speaker_similarity"] is None else f"{summary['speaker_similarity']:.4f}"
        lines.append(
            f"| {name} | {similarity} | {summary['wer']:.4f} | {summary['cer']:.4f} | {summary['clips']} |"
            f" {summary['unscorable']} |"
        )
    return "\n".join(lines) + "\n"


def generate(args: argparse.Namespace) -> dict:
    """Tune the voice state and synthesise each condition's test sentences into OUT/<condition>/<id>.wav; writes
    and returns the record of OUT/generation.json (settings, splits, tuning, frames per clip)."""
    model, codec, codec_path, use_phonemes = load_checkpoint(args.checkpoint, args.codec, args.device)
    clips = speaker_clips(args.wav_dir, args.transcript, codec, use_phonemes)
    tune, test = split_clips(clips, args.tune_seconds, args.eval_clips, codec.sample_rate)
    longest = max(clip["codes"].shape[1] for clip in test)
    min_frames = math.ceil(codec.config["n_fft"] / codec.hop_length)
    max_frames = 2 * longest if args.max_seconds is None else math.ceil(args.max_seconds * codec.frame_rate)
    args.out.mkdir(parents=True, exist_ok=True)

    voice, losses, tune_time = None, [], 0.0
    if "voice_state" in args.conditions:
        torch.manual_seed(args.seed)
        voice = VoiceState.for_model(model, args.rank).to(args.device)
        start = time.perf_counter()
        items = [{key: clip[key] for key in ("id", "text_tokens", "codes")} for clip in tune]
        losses = tune_voice(
            model,
            voice,
            items,
            lr=args.lr,
            batch_size=args.batch_size,
            accumulation=args.accumulation,
            epochs=args.epochs,
            seed=args.seed,
            path=args.out / "voice.safetensors",
        )
        tune_time = time.perf_counter() - start
    model.eval()

    prompt = {**tune[0], "codes": codec.encode(trim_trailing_silence(tune[0]["wav"], codec.sample_rate))}
    frames = {}
    for condition in args.conditions:
        if condition == "codec":
            outputs = [clip["codes"] for clip in test]
        else:
            outputs = synthesise(model, condition, test, voice, prompt, max_frames, args.top_k, args.seed, use_phonemes)
        folder = args.out / condition
        folder.mkdir(exist_ok=True)
        for clip, codes in zip(test, outputs, strict=True):
            if codes.shape[1] >= min_frames:
                write_wav(folder / f"{clip['id']}.wav", codec.decode(codes.cpu()), codec.sample_rate)
        frames[condition] = {clip["id"]: codes.shape[1] for clip, codes in zip(test, outputs, strict=True)}

    record = {
        "benchmark": "voice_cloning",
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
        "torch": torch.__version__,
        "settings": {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()},
        "codec_path": codec_path,
        "model_parameters": sum(parameter.numel() for parameter in model.parameters()),
        "use_phonemes": use_phonemes,
        "max_frames": max_frames,
        "tune_clips": [clip["id"] for clip in tune],
        "tune_seconds": sum(len(clip["wav"]) for clip in tune) / codec.sample_rate,
        "test_clips": [clip["id"] for clip in test],
        "prompt_clip": tune[0]["id"],
        "prompt_frames": prompt["codes"].shape[1],
        "tuning": {"losses": losses, "seconds": tune_time},
        "frames": frames,
    }
    (args.out / "generation.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.out / 'generation.json'} and the clips of {', '.join(frames)}")
    return record


def score(args: argparse.Namespace, record: dict) -> dict:
    """Score the clips ``generate`` wrote (``record``: its generation.json) against the speaker's real clips;
    writes and returns the report of voice_cloning.json and prints the summary table."""
    codec = MelKMeansCodec.load(args.codec or record["codec_path"])
    texts = read_transcript(args.transcript)
    missing = [clip_id for clip_id in record["test_clips"] if clip_id not in texts]
    if missing:
        raise ValueError(f"{args.transcript} lacks the test clips {missing} of {args.out / 'generation.json'}")
    test = [
        {
            "id": clip_id,
            "text": texts[clip_id],
            "wav": clip_audio(args.wav_dir, args.transcript, clip_id, codec.sample_rate),
        }
        for clip_id in record["test_clips"]
    ]
    scorer = Scorer(codec.sample_rate)
    references = {clip["id"]: scorer.embed(clip["wav"]) for clip in test}
    heard = [scorer.asr.transcribe(clip["wav"], codec.sample_rate) for clip in test]
    conditions = {}
    for condition, frames in record["frames"].items():
        scores = {}
        for clip in test:
            path = args.out / condition / f"{clip['id']}.wav"
            wav = read_wav(path, codec.sample_rate) if path.is_file() else None
            scores[clip["id"]] = {
                "frames": frames[clip["id"]],
                **scorer.score(wav, references[clip["id"]], clip["text"]),
            }
        conditions[condition] = {"summary": summarise(scores, [clip["text"] for clip in test]), "clips": scores}
    report = {key: value for key, value in record.items() if key != "frames"}
    report |= {"real": error_rates(heard, [clip["text"] for clip in test]), "conditions": conditions}
    table = summary_table(report)
    (args.out / "voice_cloning.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    (args.out / "voice_cloning.md").write_text(table)
    print(table, end="")
    print(f"wrote {args.out / 'voice_cloning.json'} and voice_cloning.md")
    return report


def run(args: argparse.Namespace) -> dict:
    """The ``--stage``: generate, score what an earlier ``generate`` wrote, or both."""
    if args.stage == "score":
        generation = args.out / "generation.json"
        if not generation.is_file():
            raise FileNotFoundError(f"no {generation}: run --stage generate (or all) with this --out first")
        return score(args, json.loads(generation.read_text()))
    record = generate(args)
    return record if args.stage == "generate" else score(args, record)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="lrnn bench voice_cloning", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, help="a LinaSpeechModule checkpoint (.ckpt); not for --stage score")
    parser.add_argument("--stage", choices=STAGES, default="all", help="generate, score, or both (see above)")
    parser.add_argument("--wav-dir", type=Path, required=True, help="the held-out speaker's <id>.wav clips")
    parser.add_argument("--transcript", type=Path, required=True, help="their id|text transcript")
    parser.add_argument("--codec", type=Path, default=None, help="codec file (default: the checkpoint's codec_path)")
    parser.add_argument("--out", type=Path, default=Path("runs/voice_cloning"), help="folder of the outputs")
    parser.add_argument("--conditions", nargs="+", choices=CONDITIONS, default=list(CONDITIONS))
    parser.add_argument("--tune-seconds", type=float, default=60.0, help="enrolment audio for tuning (s)")
    parser.add_argument("--eval-clips", type=int, default=20, help="test sentences after the enrolment clips")
    parser.add_argument("--rank", type=int, default=1, help="rank of the tuned initial states")
    parser.add_argument("--lr", type=float, default=0.1, help="Adam's learning rate for tuning")
    parser.add_argument("--batch-size", type=int, default=2, help="tuning clips per batch")
    parser.add_argument("--accumulation", type=int, default=4, help="tuning batches per Adam step")
    parser.add_argument("--epochs", type=int, default=10, help="tuning passes over the enrolment clips")
    parser.add_argument("--top-k", type=int, default=100, help="top-k sampling of the first codebook")
    parser.add_argument("--max-seconds", type=float, default=None, help="longest output (default 2x longest test)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if args.eval_clips < 1 or args.tune_seconds < 0:
        parser.error(f"need --eval-clips >= 1 and --tune-seconds >= 0, got {args.eval_clips}, {args.tune_seconds}")
    if args.checkpoint is None and args.stage != "score":
        parser.error(f"--stage {args.stage} needs --checkpoint")
    args.conditions = list(dict.fromkeys(args.conditions))
    return run(args)


if __name__ == "__main__":
    main()
