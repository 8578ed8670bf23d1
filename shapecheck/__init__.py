"""shapecheck: find shape, loss and label mismatches in deep-learning models before training.

    import shapecheck
    report = shapecheck.check(model, input=(16, 3, 224, 224), loss=nn.BCEWithLogitsLoss(), labels=y)
    report.raise_for_errors()

    with shapecheck.watch() as watched:   # the first training step inside is checked, then stopped
        trainer.fit(...)
"""

__version__ = "0.1.0"
__all__ = ["Report", "ShapeMismatchError", "check", "watch"]


def __getattr__(name):
    # imported on first use: `import shapecheck` stays as cheap as the CLI's --help
    if name == "check":
        from shapecheck.python_api import check
        return check
    if name == "watch":
        from shapecheck.run import watch
        return watch
    if name in ("Report", "ShapeMismatchError"):
        from shapecheck import report
        return getattr(report, name)
    raise AttributeError(f"module 'shapecheck' has no attribute {name!r}")
