"""pack_runs.py: a study's finished runs, packed without their weights, so a study of many sittings survives a fresh
machine (runs/ is the user's own and is never committed; what is packed under reference/ is).

    python scripts/pack_runs.py runs/study-screen-e2 reference/study-screen-e2/batch/packed-runs            # pack
    python scripts/pack_runs.py --unpack reference/study-screen-e2/batch/packed-runs runs/study-screen-e2   # carry on

One <run>.tar.xz per finished run (a screen that wrote its cost; a run whose last checkpoint is evaluated): config,
metrics, rollouts, LIM's selections and every evaluation, about 35 KB of a run folder's 100 MB. Left out: the LoRA
weights and optimizer state (each checkpoint keeps its weights' sha256 in `weights_id`, which evaluate.weights_id
reads when the weights are gone, so the evaluations still belong to those weights and pipeline.py finds the run done
instead of training it again), peft's README, and the figures (lim.py and limr.py draw them from the files kept).
The archives are byte-stable (sorted names, no owners, the files' own times): packing again rewrites only the runs
that changed. Unpacking restores each run whose folder is absent and leaves the others as they are.
"""

import argparse
import io
import json
import sys
import tarfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import data  # noqa: E402
import evaluate  # noqa: E402
import pipeline  # noqa: E402

LEFT_OUT = {"adapter_model.safetensors", "trainer_state.pt", "README.md"}  # in each checkpoint; weights_id instead


def finished(run: Path) -> bool:
    """Done as pipeline.py judges it, under the evaluation settings the run was trained with."""
    if not (run / "config.json").exists():
        return False
    config = json.loads((run / "config.json").read_text())
    return pipeline.done(run, {k: config[k] for k in ("eval_benchmarks", "eval_limit", "eval_max_tokens")})


def member(name: str, payload: bytes, mtime: float) -> tuple[tarfile.TarInfo, io.BytesIO]:
    """A tar entry with no owner and a fixed mode, so the same files always give the same archive."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(payload), int(mtime), 0o644
    return info, io.BytesIO(payload)


def archive(run: Path) -> bytes:
    """The run folder as .tar.xz bytes, weights replaced by their id."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz") as tar:
        for path in sorted(p for p in run.rglob("*") if p.is_file()):
            rel = path.relative_to(run.parent).as_posix()
            if path.parent.parent.name == "checkpoints" and path.name in LEFT_OUT:
                if path.name == "adapter_model.safetensors":
                    tar.addfile(*member(f"{Path(rel).parent.as_posix()}/weights_id",
                                        evaluate.weights_id(path.parent).encode(), path.stat().st_mtime))
                continue
            if path.suffix != ".png":
                tar.addfile(*member(rel, path.read_bytes(), path.stat().st_mtime))
    return buffer.getvalue()


def pack(runs: Path, out: Path) -> list[str]:
    """Every finished run under runs/ into out/<run>.tar.xz; the names of those written or rewritten."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for run in sorted(p for p in runs.iterdir() if p.is_dir() and finished(p)):
        packed, target = archive(run), out / f"{run.name}.tar.xz"
        if not target.exists() or target.read_bytes() != packed:
            data.write_atomic(target, packed)
            written.append(run.name)
    return written


def unpack(packed: Path, runs: Path) -> list[str]:
    """Each archive in packed/ whose run folder is absent from runs/, extracted there; the names restored."""
    runs.mkdir(parents=True, exist_ok=True)
    restored = []
    for path in sorted(packed.glob("*.tar.xz")):
        name = path.name.removesuffix(".tar.xz")
        if not (runs / name).exists():
            with tarfile.open(path) as tar:
                tar.extractall(runs, filter="data")  # no path may leave runs/
            restored.append(name)
    return restored


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("source", type=Path, help="the runs folder to pack (with --unpack: the folder of archives)")
    p.add_argument("dest", type=Path, help="the folder of archives to write (with --unpack: the runs folder)")
    p.add_argument("--unpack", action="store_true", help="restore the archived runs whose folders are absent")
    args = p.parse_args(argv)
    if not args.source.is_dir():
        p.error(f"{args.source}: no such folder")
    names = unpack(args.source, args.dest) if args.unpack else pack(args.source, args.dest)
    print(f"{'restored' if args.unpack else 'packed'} {len(names)} run(s) into {args.dest}: {', '.join(names) or '-'}")


if __name__ == "__main__":
    main()
