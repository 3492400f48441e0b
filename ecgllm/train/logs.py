"""Training logs: CSV (always), TensorBoard (if installed and asked), a loss-curve PNG at the end."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

log = logging.getLogger(__name__)


class MetricLog:
    def __init__(self, out: str | Path, report_to: list[str], enabled: bool = True):
        self.out = Path(out)
        self.enabled = enabled
        self.path = self.out / "log.csv"
        self.tb = None
        if enabled and "tensorboard" in report_to:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(self.out / "tensorboard"))
            except Exception as e:  # tensorboard not installed
                log.warning("tensorboard logging off: %s", e)

    def write(self, step: int, split: str, **values: float) -> None:
        if not self.enabled:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists()
        with open(self.path, "a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(["step", "split", "metric", "value"])
            for k, v in values.items():
                w.writerow([step, split, k, f"{v:.6g}"])
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(f"{split}/{k}", v, step)

    def truncate_after(self, step: int) -> None:
        """On resume: drop rows logged after the checkpoint's step (they will be logged again)."""
        if not self.enabled or not self.path.exists():
            return
        rows = list(csv.reader(open(self.path)))
        keep = [rows[0]] + [r for r in rows[1:] if int(r[0]) <= step]
        with open(self.path, "w", newline="") as f:
            csv.writer(f).writerows(keep)

    def plot(self) -> Path | None:
        if not self.enabled or not self.path.exists():
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        series: dict[str, list[tuple[int, float]]] = {}
        for r in list(csv.DictReader(open(self.path))):
            if r["metric"] == "loss":
                series.setdefault(r["split"], []).append((int(r["step"]), float(r["value"])))
        if not series:
            return None
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for split, pts in series.items():
            xs, ys = zip(*sorted(pts), strict=True)
            ax.plot(xs, ys, marker="o" if split != "train" else None, label=split)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("loss")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = self.out / "loss_curve.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
