"""Whether a run records its training step as a CUDA graph: the setting and the decision.

``cuda_graph`` takes three values: ``"auto"`` (the default) records on CUDA whenever the
step can be recorded and otherwise runs it eagerly; ``True`` demands the recording (a
step that cannot be recorded is an error); ``False`` never records. The decision is a
pure function of the setting and the machine, so it can be checked without a GPU; the
trainer reports what it decided, and any fallback, in :class:`GraphReport`.
"""

from __future__ import annotations

from dataclasses import dataclass

from seqlm.config.choices import GraphSetting, check_graph_setting
from seqlm.errors import TrainingError, first_line

#: The oldest NCCL that can record its collectives inside a CUDA graph.
MIN_NCCL_FOR_CAPTURE = (2, 9, 6)


class GraphRecordingError(TrainingError):
    """CUDA refused to record the training step (for example a read back to the host).

    :attr:`reason` is the first line of CUDA's or torch's own message.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"the training step could not be recorded as a CUDA graph "
                         f"({reason}); run without --cuda-graph")
        self.reason = reason

    @classmethod
    def from_runtime_error(cls, error: BaseException) -> GraphRecordingError:
        """The error for a failed recording, given what the recording raised.

        Ending a broken recording raises again, with the first error as its context;
        that first error names the cause, so the reason is taken from it.
        """
        while error.__context__ is not None and error.__cause__ is None:
            error = error.__context__
        return cls(first_line(error))


@dataclass(frozen=True)
class GraphDecision:
    """Whether to record the step, and why (one phrase, for notes and the summary)."""

    record: bool
    reason: str


def decide(
    setting: GraphSetting,
    device_type: str,
    *,
    backend: str | None = None,
    nccl_version: tuple[int, ...] | None = None,
) -> GraphDecision:
    """Decide whether to record the training step as a CUDA graph.

    ``backend`` is the collective backend of a distributed run (``"nccl"``, ``"gloo"``)
    or None for one process; ``nccl_version`` is torch's NCCL version where it has one.
    Off CUDA nothing is recorded, whatever the setting. A distributed run records its
    gradient all-reduce inside the graph, which needs NCCL 2.9.6 or later.
    """
    setting = check_graph_setting(setting)
    if setting is False:
        return GraphDecision(False, "turned off (--no-cuda-graph)")
    if device_type != "cuda":
        return GraphDecision(False, f"CUDA graphs apply to CUDA only, not {device_type}")
    if backend is not None and backend != "nccl":
        return GraphDecision(False, f"the {backend} backend cannot be recorded")
    if backend == "nccl" and (nccl_version is None
                              or tuple(nccl_version) < MIN_NCCL_FOR_CAPTURE):
        have = ".".join(map(str, nccl_version)) if nccl_version else "unknown"
        return GraphDecision(False, f"NCCL {have} cannot record collectives (2.9.6 or "
                                    "later can)")
    why = "asked for (--cuda-graph)" if setting is True else "auto on CUDA"
    return GraphDecision(True, why)


@dataclass
class GraphReport:
    """What a trainer did about CUDA graphs, for the run's summary.

    ``recorded`` is True once a step ran as a recorded graph; ``fallback`` holds the
    reason when an ``auto`` run tried to record and ran eagerly instead.
    """

    setting: GraphSetting
    decision: GraphDecision
    recorded: bool = False
    fallback: str | None = None

    def to_dict(self) -> dict[str, object]:
        """The report as JSON-ready values."""
        return {
            "setting": self.setting,
            "recorded": self.recorded,
            "reason": self.fallback if self.fallback is not None else self.decision.reason,
            "fell_back": self.fallback is not None,
        }


def fallback_note(reason: str) -> str:
    """The one-line note an ``auto`` run prints when it falls back to the eager step."""
    return (f"note: the training step could not be recorded as a CUDA graph ({reason}); "
            "training continues without it (--no-cuda-graph silences this)")
