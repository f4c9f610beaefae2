"""The trivial baseline: return the model unchanged.

It must FAIL the forget test of every subpopulation forget set: that is what shows the suite
can tell forgetting from not forgetting.

    pytest --unlearn-method=examples.do_nothing:unlearn
"""


def unlearn(model, forget, retain, context):
    return model
