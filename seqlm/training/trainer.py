"""The default trainer: the seed's loop of minibatch SGD with gradient clipping.

Beyond the seed it offers Adam and AdamW, a cosine learning-rate schedule, validation on
held-out text once per epoch, and a state (optimizer, schedule, epoch, metrics, random
number generators) that a checkpoint stores so that a run can resume exactly.
"""

from __future__ import annotations

import contextlib
import functools
import math
import random
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeAlias

import torch
from torch import nn
from torch.nn import functional as F

from seqlm.config.choices import (
    OPTIMIZERS,
    PRECISIONS,
    SCHEDULES,
    GraphSetting,
    check_choice,
    check_graph_setting,
)
from seqlm.errors import CheckpointError, DataError, TrainingError, UsageError
from seqlm.interfaces import Callback, CallbackList, Sampler, State, Trainer, detach_state
from seqlm.metrics import EpochMetrics
from seqlm.training.averaging import WeightAverage
from seqlm.training.early_stopping import early_stop_reason
from seqlm.training.evaluation import evaluate_loss
from seqlm.training.graph_policy import (
    GraphDecision,
    GraphRecordingError,
    GraphReport,
    decide,
    fallback_note,
)
from seqlm.training.graphs import StaticStep
from seqlm.training.plain_sgd import PlainSGD

#: What the trainer steps with: a ``torch.optim`` optimizer or, for plain SGD on the CPU,
#: :class:`~seqlm.training.plain_sgd.PlainSGD`.
Optimizer: TypeAlias = "torch.optim.Optimizer | PlainSGD"

#: Validation reads the held-out text this many steps at a time (the state carries
#: over, so the length only trades memory for fewer Python iterations).
VAL_CHUNK_STEPS = 256


def rng_state() -> dict[str, Any]:
    """The states of the random number generators that training draws from."""
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned (CUDA states only where they fit)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(state["torch"].cpu().to(torch.uint8))
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu().to(torch.uint8) for s in cuda])


@contextlib.contextmanager
def float32_products(device: torch.device, precision: str) -> Iterator[None]:
    """Let CUDA's float32 matrix products use TensorFloat-32 while training with ``tf32``.

    cuDNN's recurrent kernels (``nn.LSTM`` and friends on a GPU) already use TF32 by
    default; this gives the scratch cells' products and the output layer the same
    tensor-core speed. The setting is torch's, for the whole process, so it is put back
    when training ends. Nothing changes on other devices or precisions.
    """
    if precision != "tf32" or device.type != "cuda":
        yield
        return
    matmul = torch.backends.cuda.matmul
    # torch 2.9 names the setting fp32_precision; earlier releases only allow_tf32.
    name, value = (("fp32_precision", "tf32") if hasattr(matmul, "fp32_precision")
                   else ("allow_tf32", True))
    before = getattr(matmul, name)
    setattr(matmul, name, value)
    try:
        yield
    finally:
        setattr(matmul, name, before)


def cosine_factor(epoch: int, epochs: int, warmup: int = 0, floor: float = 0.05) -> float:
    """Learning-rate multiplier for ``epoch`` (0-based): linear warm-up, then cosine decay.

    The rate ends at ``floor`` times its peak rather than zero, so the last epoch still
    learns something.
    """
    if epoch < warmup:
        return (epoch + 1) / (warmup + 1)
    span = max(1, epochs - warmup)
    progress = min(1.0, (epoch - warmup) / span)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))



class TrainerStateError(CheckpointError):
    """A trainer state read from a checkpoint cannot be applied: the file is damaged."""


def _damaged(field: str, exc: Exception) -> TrainerStateError:
    return TrainerStateError(f"the field 'trainer.{field}' cannot be restored "
                             f"({type(exc).__name__}: {exc}); the file was edited or damaged: "
                             "restore it, or train again")

class DefaultTrainer(Trainer):
    """Minibatch SGD (or Adam/AdamW), global-norm gradient clipping, perplexity per epoch.

    With a contiguous sampler the hidden state carries over from batch to batch
    (detached, i.e. truncated backpropagation through time); otherwise each batch starts
    from a fresh state, as the seed does with random sampling. The loss is summed on the
    device and read once per epoch, so the loop never waits for the host.

    Options: ``optimizer`` (sgd, adam, adamw), ``weight_decay`` (None: the optimizer's
    default), ``schedule`` (constant, or cosine decay over the run), ``warmup_epochs``,
    ``precision`` (fp32; tf32: float32 with TensorFloat-32 products on CUDA, as cuDNN's
    recurrent kernels use by default; bf16: bfloat16 autocast) and ``cuda_graph``:
    ``"auto"`` (the default) records each step once on CUDA as a CUDA graph and replays
    it for the following batches, falling back to the eager step with a note when the
    step cannot be recorded; ``True`` demands the recording; ``False`` never records
    (see :mod:`seqlm.training.graphs` and :mod:`seqlm.training.graph_policy`). After :meth:`fit`,
    :attr:`graph_report` says which path ran. ``average`` validates an average of the
    weights too (:mod:`seqlm.training.averaging`) and ``patience`` stops early
    (:mod:`seqlm.training.early_stopping`). A sampler whose batches vary in length trains each
    batch with the learning rate scaled by its length over ``num_steps``, eagerly: a
    recording replays one shape.
    """

    validates = True

    def __init__(
        self,
        lr: float,
        clip: float,
        epochs: int,
        device: torch.device | str = "cpu",
        optimizer: str = "sgd",
        weight_decay: float | None = None,
        schedule: str = "constant",
        warmup_epochs: int = 0,
        precision: str = "fp32",
        cuda_graph: GraphSetting = "auto",
        average: bool = False,
        patience: int = 0,
    ) -> None:
        super().__init__(lr=lr, clip=clip, epochs=epochs, device=device)
        #: Keep and validate an average of the weights (:mod:`seqlm.training.averaging`).
        self.average: WeightAverage | None = WeightAverage() if average else None
        #: Stop after this many epochs without a better validation loss; 0 never.
        self.patience = patience
        #: Whether the sampler of the current :meth:`fit` gives batches of one length.
        self._fixed_length = True
        #: Record each training step on CUDA as a CUDA graph and replay it
        #: (:mod:`seqlm.training.graphs`): "auto", True (demand) or False; no effect off CUDA.
        self.cuda_graph: GraphSetting = check_graph_setting(cuda_graph)
        #: What the last :meth:`fit` did about CUDA graphs (None before it).
        self.graph_report: GraphReport | None = None
        #: Receives one-line notes (a fallback to the eager step); stderr by default.
        self.notify: Callable[[str], None] = _print_to_stderr
        self._static: StaticStep | None = None
        self._fell_back = False
        #: Eager steps before the first recording (optimizer states, library workspaces).
        self.graph_warmup = 3
        check_choice("--precision", precision, PRECISIONS)
        self.precision = precision
        check_choice("--optimizer", optimizer, OPTIMIZERS)
        check_choice("--schedule", schedule, SCHEDULES)
        self.optimizer_name = optimizer
        self.weight_decay = weight_decay
        self.schedule = schedule
        self.warmup_epochs = warmup_epochs
        self.history: list[EpochMetrics] = []
        self.optimizer: Optimizer | None = None
        self.scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
        self._pending_state: dict[str, Any] | None = None
        self._grad_norms: torch.Tensor | None = None

    def make_optimizer(self, model: nn.Module) -> Optimizer:
        """The chosen optimizer over all trainable parameters (plain SGD in the seed)."""
        params = [p for p in model.parameters() if p.requires_grad]
        # One fused kernel per update on CUDA (fewer kernels in each step, recorded or
        # not); elsewhere the multi-tensor path.
        fused = self.device.type == "cuda" and all(p.is_floating_point() for p in params)
        kwargs: dict[str, Any] = {"lr": self.lr, **({"fused": True} if fused else
                                                    {"foreach": True})}
        if self.optimizer_name != "sgd" and self.use_static_step() and self.device.type != "cpu":
            # Adam keeps its step count on the GPU, where a recording can update it (only
            # accelerators take this; tests run the static step on the CPU).
            kwargs["capturable"] = True
        if self.weight_decay is not None:
            kwargs["weight_decay"] = self.weight_decay
        if self._plain_sgd_will_do():
            return PlainSGD(params, self.lr)
        cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam,
               "adamw": torch.optim.AdamW}[self.optimizer_name]
        return cls(params, **kwargs)

    def _plain_sgd_will_do(self) -> bool:
        """Whether :class:`~seqlm.training.plain_sgd.PlainSGD` makes this run's exact update.

        Only on the CPU: there the import ``torch.optim`` costs is a noticeable share of a
        short job, while on CUDA the fused kernel of ``torch.optim.SGD`` is what a recorded
        step wants. A schedule needs a real ``torch.optim`` optimizer.
        """
        return (self.optimizer_name == "sgd" and self.device.type == "cpu"
                and not self.weight_decay and self.schedule == "constant"
                and self.warmup_epochs == 0)

    def make_scheduler(
        self, optimizer: Optimizer
    ) -> torch.optim.lr_scheduler.LRScheduler | None:
        """The per-epoch learning-rate schedule, or None for a constant rate."""
        if self.schedule == "constant" and self.warmup_epochs == 0:
            return None
        epochs, warmup = self.epochs, self.warmup_epochs
        if self.schedule == "constant":
            def factor(e: int) -> float:
                return min(1.0, (e + 1) / (warmup + 1))
        else:
            def factor(e: int) -> float:
                return cosine_factor(e, epochs, warmup)
        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    def wrap_model(self, model: nn.Module) -> nn.Module:
        """The module that runs the training steps; ``model`` itself here.

        Must keep ``model``'s parameters and its ``begin_state``. A distributed trainer
        returns a wrapper that synchronises gradients; checkpoints still save ``model``.
        """
        return model

    def local_batch(
        self, X: torch.Tensor, Y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The rows of a sampled batch that this process trains on; all of them here."""
        return X, Y

    def reduce_epoch_totals(self, loss_sum: torch.Tensor, tokens: int) -> tuple[float, int]:
        """The epoch's summed loss and token count over all processes; this one's here."""
        return loss_sum.item(), tokens

    # -- state for checkpoints -------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this run exactly after the last finished epoch."""
        return {
            "epoch": self.history[-1].epoch if self.history else self.start_epoch,
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None else None,
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "history": [m.to_dict() for m in self.history],
            "rng": rng_state(),
            **({"average": self.average.state_dict()} if self.average is not None else {}),
        }

    def averaged_weights(self) -> dict[str, torch.Tensor] | None:
        """The average of the weights (``average=True``, once started), else None."""
        return self.average.weights() if self.average is not None else None

    def check(self, sampler: Sampler) -> None:
        """A demanded CUDA graph replays one batch shape, which a varying sampler breaks."""
        if (self.cuda_graph is True and self.device.type == "cuda"
                and not sampler.fixed_length):
            raise UsageError("--cuda-graph needs batches of one length, and this sampler "
                             "varies them; drop --cuda-graph or use another --sampler")

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict` at the next :meth:`fit`.

        The optimizer's and schedule's states are applied once :meth:`fit` has built
        them, and the random number generators are restored just before the first epoch.
        """
        self._pending_state = state
        self.history = [EpochMetrics.from_dict(row) for row in state.get("history", [])]
        self.start_epoch = int(state["epoch"])

    def _apply_pending_state(self, model: nn.Module) -> None:
        state, self._pending_state = self._pending_state, None
        if state is None:
            return
        if self.average is not None and state.get("average") is not None:
            self.average.load_state_dict(state["average"], model)
        if state.get("optimizer") is not None and self.optimizer is not None:
            try:
                self.optimizer.load_state_dict(state["optimizer"])
            except (ValueError, KeyError) as exc:
                raise UsageError(f"the checkpoint's optimizer state does not fit --optimizer "
                                 f"{self.optimizer_name} ({exc}); resume with the same "
                                 "optimizer") from None
            except (TypeError, AttributeError) as exc:
                raise _damaged("optimizer", exc) from None
        damage = (TypeError, KeyError, ValueError, AttributeError, RuntimeError)
        try:
            if state.get("scheduler") is not None and self.scheduler is not None:
                self.scheduler.load_state_dict(state["scheduler"])
                self._rate_of_this_schedule()
        except damage as exc:
            raise _damaged("scheduler", exc) from None
        try:
            set_rng_state(state["rng"])
        except damage as exc:
            raise _damaged("rng", exc) from None

    def _rate_of_this_schedule(self) -> None:
        """Set the rate of the epoch about to train by this run's schedule. The saved
        optimizer holds the rate the saved schedule gave last; a resume that raised
        --epochs stretches a cosine over more epochs, and its first epoch would otherwise
        train at the shorter schedule's last rate (its floor)."""
        scheduler = self.scheduler
        assert scheduler is not None and self.optimizer is not None
        # Only a rate that is the base rate times a factor of the epoch can be computed
        # afresh; another schedule (a subclass's own, a MultiplicativeLR) keeps its rate.
        if type(scheduler) is not torch.optim.lr_scheduler.LambdaLR:
            return
        for group, base, factor in zip(self.optimizer.param_groups, scheduler.base_lrs,
                                       scheduler.lr_lambdas, strict=True):
            group["lr"] = base * factor(scheduler.last_epoch)

    # -- training ----------------------------------------------------------------------

    def fit(
        self,
        model: nn.Module,
        corpus: torch.Tensor,
        sampler: Sampler,
        callbacks: Sequence[Callback] = (),
        val_corpus: torch.Tensor | None = None,
    ) -> list[EpochMetrics]:
        """Train until epoch ``self.epochs``, validating on ``val_corpus`` after each
        epoch when given; see :meth:`Trainer.fit`."""
        model.to(self.device)
        corpus = corpus.to(self.device)
        if val_corpus is not None and len(val_corpus):
            val_corpus = val_corpus.to(self.device)
        else:
            val_corpus = None
        self._static, self._fell_back = None, False
        self._fixed_length = sampler.fixed_length
        self.graph_report = GraphReport(self.cuda_graph, self.graph_decision())
        self.optimizer = optimizer = self.make_optimizer(model)
        self._grad_norms = None  # made afresh on this fit's device
        self.scheduler = self.make_scheduler(optimizer)
        params = [p for p in model.parameters() if p.requires_grad]
        net = self.wrap_model(model)
        if self._pending_state is None:
            self.history, self.start_epoch = [], 0
        self._apply_pending_state(model)
        self.stop_reason = self.stop_requested = None
        hooks = CallbackList(callbacks)
        hooks.on_train_start(self)
        try:
            with float32_products(self.device, self.precision):
                for epoch in range(self.start_epoch + 1, self.epochs + 1):
                    # Checked before each epoch, so a run resumed after stopping early
                    # stops again instead of training on.
                    self.stop_reason = early_stop_reason(self.history, self.patience)
                    if self.stop_reason is not None:
                        break
                    metrics = self._train_epoch(epoch, net, corpus, sampler, optimizer,
                                                params)
                    if val_corpus is not None:
                        metrics.val_loss = self._validate(epoch, model, val_corpus, sampler)
                        if self.average is not None:
                            metrics.avg_val_loss = self.average.after_epoch(
                                model, self.epochs, [*self.history, metrics],
                                functools.partial(self._validate, epoch, val_corpus=val_corpus,
                                                  sampler=sampler))
                    if self.scheduler is not None:
                        self.scheduler.step()
                    self.history.append(metrics)
                    hooks.on_epoch_end(self, metrics)
                    asked = self.stop_asked()
                    if asked is not None:
                        self.stop_reason = f"stopped after epoch {epoch}, as asked: {asked}"
                        break
        except BaseException as error:
            hooks.on_exception(self, error)
            raise
        hooks.on_train_end(self, self.history)
        return self.history

    def stop_asked(self) -> str | None:
        """Why a callback asked this epoch to be the last (:meth:`request_stop`), else
        None; read once per epoch, after the epoch's callbacks."""
        return self.stop_requested

    def autocast(self, cache_enabled: bool = True) -> contextlib.AbstractContextManager:
        """bfloat16 autocast for ``--precision bf16``; a no-op context for fp32.

        A step recorded as a CUDA graph must not use autocast's cache of cast weights
        (the cache would outlive the recording), hence ``cache_enabled``.
        """
        if self.precision != "bf16":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16,
                              cache_enabled=cache_enabled)

    def _validate(
        self, epoch: int, model: nn.Module, val_corpus: torch.Tensor, sampler: Sampler
    ) -> float:
        loss_sum, tokens = evaluate_loss(model, val_corpus, sampler.batch_size,
                                         VAL_CHUNK_STEPS, self.device)
        loss = loss_sum.item() / max(tokens, 1)
        if not math.isfinite(loss):
            raise TrainingError(
                f"the validation loss became {loss} at epoch {epoch}; "
                "try a smaller --lr or a smaller --clip"
            )
        return loss

    def _step(
        self,
        X: torch.Tensor,
        Y: torch.Tensor,
        state: State,
        model: nn.Module,
        optimizer: Optimizer,
        params: list[nn.Parameter],
        autocast_cache: bool = True,
    ) -> tuple[torch.Tensor, State]:
        """One optimisation step on one batch: ``(detached mean loss, new state)``."""
        with self.autocast(cache_enabled=autocast_cache):
            logits, state, penalty = model(X, state, with_penalty=True)
        loss = F.cross_entropy(logits.float(), Y.T.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        # The penalty shapes the gradient only; the reported loss stays the
        # cross-entropy, so perplexities mean the same with or without it.
        (loss if penalty is None else loss + penalty).backward()
        if self.clip > 0:
            norm = nn.utils.clip_grad_norm_(params, self.clip, foreach=True)
        else:
            norm = nn.utils.get_total_norm(
                [p.grad for p in params if p.grad is not None], foreach=True)
        # Summed in place on the device (no host sync per batch; a recorded CUDA graph
        # adds into the same tensor); _train_epoch reads the mean once per epoch.
        self._grad_norm_sum().add_(norm.to(torch.float32))
        optimizer.step()
        return loss.detach(), state

    def _grad_norm_sum(self) -> torch.Tensor:
        """The running sum of this epoch's gradient norms, one tensor for the whole fit."""
        if self._grad_norms is None:
            self._grad_norms = torch.zeros((), device=self.device)
        return self._grad_norms

    def graph_decision(self) -> GraphDecision:
        """Whether this trainer records its step as a CUDA graph, and why."""
        decision = decide(self.cuda_graph, self.device.type)
        if decision.record and not self._fixed_length:
            return GraphDecision(False, "the sampler varies the batches' length, and a "
                                 "recording replays one shape")
        return decision

    def use_static_step(self) -> bool:
        """Whether batches run through a :class:`~seqlm.training.graphs.StaticStep`."""
        return not self._fell_back and self.graph_decision().record

    def _fall_back(self, error: GraphRecordingError) -> tuple[torch.Tensor, State]:
        """Leave the recorded step for the eager one after a failed recording (auto only).

        Returns the loss summed so far by the static step and the state the failed batch
        started from; a demanded recording re-raises instead.
        """
        if self.cuda_graph is True or self._static is None:
            raise error
        static, self._static, self._fell_back = self._static, None, True
        if self.graph_report is not None:
            self.graph_report.fallback = error.reason
        self.notify(fallback_note(error.reason))
        return static.take_loss_sum(), static.current_state()

    def _static_batch(
        self,
        X: torch.Tensor,
        Y: torch.Tensor,
        fresh: bool,
        model: nn.Module,
        optimizer: Optimizer,
        params: list[nn.Parameter],
    ) -> int:
        """Train on one batch through the static step, from a fresh state or the one the
        last batch ended in; returns the batch's token count."""
        rates = [float(group["lr"]) for group in optimizer.param_groups]
        begin = model.begin_state(X.shape[0], self.device) if fresh else None
        current = self._static
        if current is None or not current.fits(X, Y, begin, rates):
            # First batch, new shapes or new learning rates: record a new step. Mid-epoch
            # a contiguous run carries its state over where the shapes allow it.
            if begin is None:
                begin = model.begin_state(X.shape[0], self.device)
                if current is not None and current.holds(begin):
                    begin = current.current_state()
            pending = current.take_loss_sum() if current is not None else None

            def step(inputs: torch.Tensor, targets: torch.Tensor,
                     state: State) -> tuple[torch.Tensor, State]:
                return self._step(inputs, targets, state, model, optimizer, params,
                                  autocast_cache=False)

            # Recording needs the optimizer's lazily made state and the libraries'
            # workspaces to exist first: a few eager steps do that (fewer on re-records).
            self._static = current = StaticStep(
                step, X, Y, begin, rates, capture=self.device.type == "cuda",
                warmup=self.graph_warmup if current is None else 1)
            if pending is not None:
                current.loss_sum += pending
        if begin is not None:
            current.set_state(begin)
        current(X, Y)
        if current.recorded and self.graph_report is not None:
            self.graph_report.recorded = True
        return Y.numel()

    def _train_epoch(
        self,
        epoch: int,
        model: nn.Module,
        corpus: torch.Tensor,
        sampler: Sampler,
        optimizer: Optimizer,
        params: list[nn.Parameter],
    ) -> EpochMetrics:
        # ``model`` may be a wrapper (DDP), which passes ``with_penalty`` on.
        model.train()
        started = time.perf_counter()
        lr = float(optimizer.param_groups[0]["lr"])
        loss_sum = torch.zeros((), device=self.device)
        self._grad_norm_sum().zero_()
        tokens = steps = 0
        state = None
        static = self.use_static_step()
        base_rates = [group["lr"] for group in optimizer.param_groups]
        try:
            for batch in sampler(corpus):
                X, Y = self.local_batch(*batch)
                steps += 1
                if static:
                    fresh = tokens == 0 or not sampler.contiguous
                    try:
                        tokens += self._static_batch(X, Y, fresh, model, optimizer, params)
                        continue
                    except GraphRecordingError as error:
                        # Nothing of this batch ran: train on it eagerly from its start.
                        pending, state = self._fall_back(error)
                        loss_sum += pending
                        static = False
                if state is None or not sampler.contiguous:
                    state = model.begin_state(X.shape[0], self.device)
                else:
                    state = detach_state(state)
                if not sampler.fixed_length:
                    # A shorter batch carries less gradient signal, so it takes a
                    # proportionally smaller step (as AWD-LSTM does).
                    for group, rate in zip(optimizer.param_groups, base_rates, strict=True):
                        group["lr"] = rate * X.shape[1] / sampler.num_steps
                loss, state = self._step(X, Y, state, model, optimizer, params)
                loss_sum.add_(loss, alpha=Y.numel())  # as the recorded step sums it
                tokens += Y.numel()
        finally:
            for group, rate in zip(optimizer.param_groups, base_rates, strict=True):
                group["lr"] = rate
        if static and self._static is not None:
            loss_sum += self._static.take_loss_sum()
        if tokens == 0:
            raise DataError(
                f"the corpus ({len(corpus)} tokens) gives no batch of {sampler.batch_size} x "
                f"{sampler.num_steps}; use more text or smaller --batch-size/--num-steps"
            )
        total_loss, tokens = self.reduce_epoch_totals(loss_sum, tokens)
        mean_loss = total_loss / tokens  # the only host sync of the epoch
        if not math.isfinite(mean_loss):
            raise TrainingError(
                f"the loss became {mean_loss} at epoch {epoch}; "
                "try a smaller --lr (or --lr 0.002 with --optimizer adamw) or a smaller --clip"
            )
        grad_norm = self._grad_norm_sum().item() / steps
        return EpochMetrics(
            epoch=epoch, train_loss=mean_loss, tokens=tokens,
            seconds=time.perf_counter() - started, lr=lr, grad_norm=grad_norm,
        )


def _print_to_stderr(line: str) -> None:
    print(line, file=sys.stderr)
