"""Property tests of your own, on pytest-unlearn's ensembles (docs/fixtures.md).

The conformance suite asks one question (is the unlearned ensemble as close to the oracles as
exact retraining?). These tests ask others, with the same benchmark, ensembles, oracles and
method runs, through the public fixtures ``unlearn_benchmark`` and ``unlearn_run``; copy the
file into your project and put your method where ``my_method`` is imported. No
``--unlearn-method`` is needed (the tests name their method), and the plugin's options apply:

    pytest examples/test_with_unlearn_fixtures.py --unlearn-models=16
    pytest examples/test_with_unlearn_fixtures.py --unlearn-models=16 -n 2   # the same results

The first run builds the ensembles into the cache (a few seconds at N=16), later runs reuse
them; each method runs once per session and forget set, shared by every test that asks.
"""

from examples.do_nothing import unlearn as do_nothing

# Your method: a callable with the contract unlearn(model, forget, retain, context), or a
# "MODULE:FUNCTION" string; unlearn_run(..., method=None) runs the configured --unlearn-method.
from examples.retrain import unlearn as my_method

#: The forget set these tests use: digits-mlp's 36 nearest neighbours of an atypical image, a
#: subpopulation the rest of the training data does not explain.
FORGET_SET = "knn36"
#: How far from the oracles' mean forget accuracy may lie: 0.05 is about 2 of the 36 images.
FORGET_TOLERANCE = 0.05
#: How far any member's validation accuracy may lie from what retraining keeps.
VALIDATION_TOLERANCE = 0.01


def _forget_gap(bench, unlearned):
    """Mean forget-set accuracy of ``unlearned`` minus that of the oracles (retrained without
    the forget set): 0 when it forgot as much as retraining does."""
    forget = bench.split(FORGET_SET, "forget")
    oracles = bench.oracle_margins(FORGET_SET)
    return (
        bench.margin_accuracy(unlearned, forget).mean()
        - bench.margin_accuracy(oracles, forget).mean()
    )


def test_forget_accuracy_drops_to_the_oracles_level(unlearn_benchmark, unlearn_run):
    bench = unlearn_benchmark("digits-mlp")
    run = unlearn_run(bench, FORGET_SET, method=my_method)
    gap = _forget_gap(bench, run)
    assert abs(gap) <= FORGET_TOLERANCE, (
        f"forget accuracy {gap:+.3f} from the oracles' (N={bench.n_models})"
    )


def test_the_forget_check_catches_doing_nothing(unlearn_benchmark, unlearn_run):
    """A check that nothing fails proves nothing: the unchanged models must fail the one above."""
    bench = unlearn_benchmark("digits-mlp")
    gap = _forget_gap(bench, unlearn_run(bench, FORGET_SET, method=do_nothing))
    assert gap > FORGET_TOLERANCE


def test_validation_accuracy_is_kept_on_every_member(unlearn_benchmark, unlearn_run):
    bench = unlearn_benchmark("digits-mlp")
    run = unlearn_run(bench, FORGET_SET, method=my_method)
    validation = bench.split(FORGET_SET, "validation")
    retrained = bench.margin_accuracy(bench.oracle_margins(FORGET_SET), validation).mean()
    for member, accuracy in enumerate(bench.margin_accuracy(run, validation)):
        assert abs(accuracy - retrained) <= VALIDATION_TOLERANCE, (
            f"member {member}: validation accuracy {accuracy:.3f}, retraining keeps {retrained:.3f}"
        )


def test_klom_verdict_on_the_forget_split(unlearn_benchmark, unlearn_run):
    """The conformance suite's own verdict, here for one case: fails with its explanation, or
    is skipped when the ensemble is too small for the case to be conclusive."""
    bench = unlearn_benchmark("digits-mlp")
    run = unlearn_run(bench, FORGET_SET, method=my_method)
    result = bench.assert_conforms(run, FORGET_SET, "forget")
    assert result.decision.verdict == "PASS"
