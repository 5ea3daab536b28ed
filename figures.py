"""Every figure we draw of the paper's: Figure 2 (LIM trajectories), Figure 3 (training curves), accuracy against step,
and the LIM score histogram. Plain data in, a PNG out; no other module of the project is imported here."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402


def save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def training_curves(runs: dict[str, list[dict]], path: Path, held_out: dict | None = None) -> Path:
    """Figure 3: (a) held-out accuracy (if given: label -> (steps, accuracy %)), (b) response length and
    (c) training reward against step, one line per run (label -> its metrics.jsonl rows)."""
    panels = [("response_length", "(b) response length (tokens)"), ("reward_mean", "(c) training reward")]
    fig, axes = plt.subplots(1, len(panels) + bool(held_out), figsize=(5 * (len(panels) + bool(held_out)), 4))
    if held_out:
        for label, (steps, accuracy) in held_out.items():
            axes[0].plot(steps, accuracy, marker="o", label=label)
        axes[0].set(title="(a) held-out accuracy (%)", xlabel="training step")
    for ax, (key, title) in zip(axes[bool(held_out):], panels):
        for label, rows in runs.items():
            ax.plot([r["step"] for r in rows], [r[key] for r in rows], label=label)
        ax.set(title=title, xlabel="training step")
    for ax in axes:
        ax.legend()
    return save(fig, path)


def accuracy_vs_step(series: dict[str, tuple[list, list]], path: Path) -> Path:
    """Accuracy against training step, one line per benchmark (the paper's Figure 4)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, (steps, accuracy) in series.items():
        ax.plot(steps, accuracy, marker="o", label=label)
    ax.set(xlabel="training step", ylabel="pass@1 (%)", title="accuracy during training")
    ax.legend()
    return save(fig, path)


def lim_trajectories(r: np.ndarray, s: np.ndarray, r_avg: np.ndarray, path: Path, seed: int = 0) -> Path:
    """Figure 2: (a) many problems' accuracy trajectories, (b) the average curve against the two highest- and
    two lowest-scoring problems, labelled with their s."""
    epochs = np.arange(1, r.shape[1] + 1)
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    for i in np.random.default_rng(seed).choice(len(r), size=min(200, len(r)), replace=False):
        a.plot(epochs, 100 * r[i], color="tab:blue", alpha=0.15, lw=1)
    a.set(title="(a) accuracy trajectories of training problems", xlabel="training epoch", ylabel="accuracy (%)")
    b.plot(epochs, 100 * r_avg, color="red", lw=3, label="average")
    order = np.argsort(s)
    for i, color in zip([*order[-2:], *order[:2]], ["tab:green", "tab:olive", "tab:purple", "tab:gray"]):
        b.plot(epochs, 100 * r[i], color=color, lw=1.5, marker=".", label=f"s = {s[i]:.2f}")
    b.set(title="(b) average curve vs high- and low-score problems", xlabel="training epoch", ylabel="accuracy (%)")
    b.legend()
    for ax in (a, b):
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    return save(fig, path)


def score_histogram(s: np.ndarray, theta: float, path: Path, name: str = "LIM") -> Path:
    """The distribution of a selection score with the threshold marked."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(s, bins=60, color="tab:blue")
    ax.axvline(theta, color="red", ls="--", label=f"theta = {theta} ({int((s >= theta).sum())} kept)")
    ax.set(title=f"{name} scores", xlabel="s", ylabel="problems")
    ax.legend()
    return save(fig, path)


def compare_methods(trajectories: dict[str, list], r_avg: np.ndarray, lim_s: np.ndarray, mean_accuracy: np.ndarray,
                    theta: float, path: Path) -> Path:
    """(a) each selection method's mean accuracy per epoch against the average of all problems; (b) LIM's score
    against a problem's mean accuracy: how much of LIM is plain difficulty."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    epochs = np.arange(1, len(r_avg) + 1)
    a.plot(epochs, 100 * np.asarray(r_avg), color="black", lw=3, label="all problems")
    for label, curve in trajectories.items():
        a.plot(epochs, 100 * np.asarray(curve), marker=".", label=label)
    a.set(title="(a) mean accuracy of each selection", xlabel="training epoch", ylabel="accuracy (%)")
    a.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    a.legend()
    b.scatter(100 * mean_accuracy, lim_s, s=8, alpha=0.5, c=np.where(lim_s >= theta, "tab:red", "tab:blue"))
    b.axhline(theta, color="red", ls="--", lw=1)
    b.set(title="(b) LIM score against mean accuracy", xlabel="mean accuracy over epochs (%)", ylabel="LIM score s")
    return save(fig, path)


def accuracy_vs_size(series: dict[str, list[tuple]], full: dict, path: Path) -> Path:
    """Held-out accuracy against the size of the subset trained on, one line per selection method with its 95%
    interval (label -> [(problems, accuracy %, low, high)]); FULL, trained on every problem as long, as a band."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.axhspan(*full["ci95"], color="black", alpha=0.1)
    ax.axhline(full["mean"], color="black", lw=1.5, label=f"FULL ({full['mean']:.1f})")
    for i, (label, points) in enumerate(series.items()):
        x, y, low, high = (np.array(v) for v in zip(*points))
        x = x * 1.03 ** (i - (len(series) - 1) / 2)  # dodged a little, so no method's interval hides another's
        line = ax.errorbar(x, y, yerr=[y - low, high - y], marker="o", capsize=3, label=label)[0]
        ax.fill_between(x, low, high, color=line.get_color(), alpha=0.15)
    sizes = [p[0] for points in series.values() for p in points]
    ax.set(xscale="log", xlabel="problems trained on (log scale)", ylabel="held-out accuracy (%)",
           xlim=(min(sizes) / 1.5, max(sizes) * 1.5),  # a study of one size is not stretched across the figure
           title=f"accuracy against subset size, {full['steps']} steps each")
    ax.legend()
    return save(fig, path)
