"""Learning-rate schedules as config-friendly factories (optimizer -> scheduler)."""

from __future__ import annotations

import math

from torch.optim.lr_scheduler import LambdaLR


def warmup_cosine(optimizer, warmup_epochs: int = 5, max_epochs: int = 60, warmup_factor: float = 0.1, min_factor: float = 0.01):
    """Linear warm-up from ``warmup_factor`` to 1, then cosine decay to ``min_factor`` (per epoch)."""

    def factor(epoch: int) -> float:
        if epoch < warmup_epochs:
            return warmup_factor + (1 - warmup_factor) * epoch / max(1, warmup_epochs)
        progress = min(1.0, (epoch - warmup_epochs) / max(1, max_epochs - warmup_epochs))
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)


def warmup_step(optimizer, warmup_epochs: int = 10, milestones=(40, 70), gamma: float = 0.1, warmup_factor: float = 0.01):
    """Bag-of-tricks schedule: linear warm-up, then multiply by ``gamma`` at each milestone."""

    def factor(epoch: int) -> float:
        warm = warmup_factor + (1 - warmup_factor) * min(1.0, epoch / max(1, warmup_epochs))
        return warm * gamma ** sum(epoch >= m for m in milestones)

    return LambdaLR(optimizer, factor)


def budget_progress(trainer) -> float:
    """How much of the run's budget is spent, in [0, 1]: the larger of the wall-clock fraction of ``trainer.max_time``
    (read from the run's Timer, which keeps its time across resumes) and the optimizer-step fraction of
    ``max_epochs`` / ``max_steps``, so that whichever limit ends the run first sets the pace. Under DDP rank 0's
    value, which every rank must ask for at the same step."""
    from pytorch_lightning.callbacks import Timer

    fractions = [0.0]
    clock = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
    remaining = clock.time_remaining("train") if clock is not None else None
    if remaining is not None:
        elapsed = clock.time_elapsed("train")
        fractions.append(elapsed / max(elapsed + remaining, 1e-9))
    batches = trainer.num_training_batches
    if trainer.max_epochs and trainer.max_epochs > 0:  # before the loaders exist: whole epochs
        done = trainer.global_step / batches if 0 < batches < float("inf") else trainer.current_epoch
        fractions.append(done / trainer.max_epochs)
    if trainer.max_steps and trainer.max_steps > 0:
        fractions.append(trainer.global_step / trainer.max_steps)
    progress = min(1.0, max(fractions))
    # DDP: every rank takes rank 0's clock, so that all change the rate (and the input size) at the same step
    return trainer.strategy.broadcast(progress, src=0) if getattr(trainer, "world_size", 1) > 1 else progress


class BudgetSchedule(LambdaLR):
    """Linear warm-up over the first ``warmup`` of the budget, then the rate times ``gamma`` at each fraction in
    ``decays`` (per optimizer step). The budget is ``trainer.max_time`` or ``max_epochs``, whichever ends first
    (``budget_progress``), so a slower machine decays at the same fraction of its run instead of never.

    ``followed`` records each phase change (progress, factor, optimizer step, epoch) and is saved in the checkpoint with the
    rest of the scheduler state, so a checkpoint says which schedule it followed."""

    def __init__(self, optimizer, warmup: float = 0.03, warmup_factor: float = 0.1, decays=(0.7, 0.85), gamma: float = 0.1):
        decays = [float(d) for d in decays]
        if not 0 <= warmup < 1 or any(not 0 < d <= 1 for d in decays) or decays != sorted(decays) or warmup > min(decays, default=1):
            raise ValueError(f"model.scheduler: warmup={warmup} and decays={decays} must be fractions of the budget "
                             "in [0, 1], increasing, the warm-up before the first decay")
        self.warmup, self.warmup_factor, self.decays, self.gamma = float(warmup), float(warmup_factor), decays, float(gamma)
        self.followed: list[dict] = []
        self.trainer = None
        super().__init__(optimizer, self._factor)

    def follow(self, trainer) -> None:
        self.trainer = trainer

    def factor_at(self, progress: float) -> float:
        warm = self.warmup_factor + (1 - self.warmup_factor) * min(1.0, progress / self.warmup) if self.warmup > 0 else 1.0
        return warm * self.gamma ** sum(progress >= d for d in self.decays)

    def _factor(self, _step: int) -> float:
        progress = budget_progress(self.trainer) if self.trainer is not None else 0.0
        phase = "warm-up" if progress < self.warmup else f"decay {sum(progress >= d for d in self.decays)}"
        if not self.followed or self.followed[-1]["phase"] != phase:
            step = self.trainer.global_step if self.trainer is not None else 0
            batches = self.trainer.num_training_batches if self.trainer is not None else float("inf")
            self.followed.append({  # from this step on; epoch in epochs done (steps / batches per epoch)
                "phase": phase, "progress": round(progress, 4), "factor": self.factor_at(progress), "step": step,
                "epoch": round(step / batches, 2) if 0 < batches < float("inf") else 0.0,
            })
        return self.factor_at(progress)

    def state_dict(self) -> dict:
        state = super().state_dict()
        state.pop("trainer", None)
        return state
