"""A conformance kit for plugin authors: does a class keep its interface's contract?

``check_cell(MyCell)``, ``check_sampler(MySampler)``, ``check_tokenizer(MyTokenizer)``,
``check_trainer(MyTrainer)`` and ``check_logger(MyLogger)`` run every rule of the contract
against a class (built with the given constructor options) and raise an
:class:`AssertionError` that names the rule that failed and says what came instead. In a
pytest suite, :func:`parametrize_checks` turns the rules into one test case each::

    from seqlm.testing import parametrize_checks

    @parametrize_checks([MyCell, (MySampler, {"stride": 2})])
    def test_conformance(check):
        check()

The rules are those ``docs/plugins/contracts.md`` states, and the same that seqlm checks
before training (:mod:`seqlm.plugins.door`), plus what only a test can afford: gradients reach
every parameter, runs repeat under a seed, states survive a save and restore.

The rules of each kind live in a module of their own (:mod:`~seqlm.testing.cells`,
:mod:`~seqlm.testing.samplers`, :mod:`~seqlm.testing.tokenizers`,
:mod:`~seqlm.testing.trainers`, :mod:`~seqlm.testing.loggers`); :mod:`~seqlm.testing.checks`
runs them.
"""


from seqlm.testing.basics import (
    BATCH,
    EPOCHS,
    HIDDEN_SIZE,
    INPUT_SIZE,
    LINES,
    STEPS,
    VOCAB,
    Rule,
)
from seqlm.testing.cells import (
    CELL_RULES,
    cell_bf16_as_declared,
    cell_builds,
    cell_deterministic_under_a_seed,
    cell_gradients_reach_every_parameter,
    cell_shapes,
    cell_stacks_num_layers,
    cell_state_carries_over_detached,
    cell_state_dict_round_trip,
    cell_token_ids_as_declared,
)
from seqlm.testing.checks import (
    all_checks,
    apply_rule,
    check_cell,
    check_logger,
    check_sampler,
    check_tokenizer,
    check_trainer,
    interface,
    parametrize_checks,
    rules_for,
)
from seqlm.testing.loggers import (
    LOGGER_RULES,
    logger_builds,
    logger_hears_a_failure,
    logger_hears_a_run,
)
from seqlm.testing.samplers import (
    SAMPLER_RULES,
    sampler_batches,
    sampler_builds,
    sampler_contiguous_as_declared,
    sampler_deterministic_under_a_seed,
    sampler_min_tokens,
)
from seqlm.testing.tokenizers import (
    TOKENIZER_RULES,
    tokenizer_deterministic,
    tokenizer_detokenize,
    tokenizer_state_round_trip,
    tokenizer_tokenize,
)
from seqlm.testing.trainers import (
    TRAINER_RULES,
    trainer_deterministic_under_a_seed,
    trainer_fit,
    trainer_state_round_trip,
    trainer_stops_when_asked,
)

__all__ = [
    "BATCH", "EPOCHS", "HIDDEN_SIZE", "INPUT_SIZE", "LINES", "STEPS", "VOCAB",
    "CELL_RULES", "LOGGER_RULES", "SAMPLER_RULES", "TOKENIZER_RULES", "TRAINER_RULES", "Rule",
    "all_checks", "apply_rule", "cell_bf16_as_declared", "cell_builds",
    "cell_deterministic_under_a_seed", "cell_gradients_reach_every_parameter", "cell_shapes",
    "cell_stacks_num_layers", "cell_state_carries_over_detached", "cell_state_dict_round_trip",
    "cell_token_ids_as_declared", "check_cell", "check_logger", "check_sampler",
    "check_tokenizer", "check_trainer", "interface", "logger_builds", "logger_hears_a_failure",
    "logger_hears_a_run", "parametrize_checks", "rules_for", "sampler_batches",
    "sampler_builds", "sampler_contiguous_as_declared", "sampler_deterministic_under_a_seed",
    "sampler_min_tokens", "tokenizer_detokenize", "tokenizer_deterministic",
    "tokenizer_state_round_trip", "tokenizer_tokenize", "trainer_deterministic_under_a_seed",
    "trainer_fit", "trainer_state_round_trip", "trainer_stops_when_asked",
]
