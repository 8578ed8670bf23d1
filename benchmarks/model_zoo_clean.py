"""Check every torchvision and keras.applications model, built correctly for its task, and expect no errors.

    python benchmarks/model_zoo_clean.py                      # both frameworks (torch first, then keras)
    python benchmarks/model_zoo_clean.py --framework torch --only resnet
    python benchmarks/model_zoo_clean.py --isolate            # each framework in its own child process

Not a test: it builds ~95 torchvision models (classification, semantic segmentation, video classification), a
selection of timm and Hugging Face classifiers (when installed) and ~40 keras.applications models, which takes a
while. Each model is built with random weights and a small head
(5 classes), checked with its matching loss and labels holding real class ids (a `.npy` file, so the label-value
rules run too), and released before the next. Every error finding on these models is a false positive.

Prints one line per model: name, seconds (build + check), the training-signal audit's share of them, and its error
findings (rule + the first line of the message) or `clean`; warnings are listed in brackets. Exits 1 if any model
has an error finding.
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shapecheck import adapters, pipeline, targets  # noqa: E402
from shapecheck.request import Flags  # noqa: E402

adapters.quiet_frameworks()

NUM_CLASSES = 5
BATCH = 2

# ---------------------------------------------------------------------------------------------------------- torch

# Classification input sizes: 224 where the model fixes its input size (ViT's positional embedding, MaxViT's
# attention grid) or is designed around 224 windows (Swin), 299 for Inception v3; everything else takes a
# smaller image (adaptive pooling) and is checked at SMALL_IMAGE to keep the real batch-mixing probe fast.
SMALL_IMAGE = 96
TORCH_IMAGE_SIZES = {"inception_v3": 299, "maxvit_t": 224}
TORCH_IMAGE_PREFIXES = {"vit_": 224, "swin_": 224}
SEGMENTATION_IMAGE = 128
# Video: [N, C, T, H, W]. The ResNet-3D family adapts to any clip; S3D's final pool is (2, 7, 7), so it needs
# 224 frames of 16; MViT fixes 16 x 224 x 224; Video Swin pads to its (8, 7, 7) windows, so a small clip is allowed.
VIDEO_CLIP = {"s3d": (16, 224), "mvit_v1_b": (16, 224), "mvit_v2_s": (16, 224)}
SMALL_CLIP = (8, 112)

# Models that return auxiliary outputs in training mode unless told not to: a classifier trained with one loss on
# the main output is built without them.
NO_AUX_LOGITS = {"inception_v3", "googlenet"}


@dataclass
class Case:
    name: str
    framework: str
    build: Callable[[], object]
    inputs: list[str]
    labels: np.ndarray
    loss: str | None            # None: the loss the (Keras) model was compiled with
    notes: list[str] = field(default_factory=list)


def class_ids(batch: int = BATCH) -> np.ndarray:
    """Class ids spanning the head: 0 and NUM_CLASSES - 1 (then any others), int64."""
    ids = np.arange(batch, dtype=np.int64) * (NUM_CLASSES - 1) // max(batch - 1, 1)
    return ids.astype(np.int64)


def mask(height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, NUM_CLASSES, size=(BATCH, height, width), dtype=np.int64)


def torch_cases() -> list[Case]:
    import torchvision.models as tvm

    cases = []
    for name in tvm.list_models(module=tvm):
        size = TORCH_IMAGE_SIZES.get(name) or next(
            (s for prefix, s in TORCH_IMAGE_PREFIXES.items() if name.startswith(prefix)), SMALL_IMAGE)
        kwargs = {"weights": None, "num_classes": NUM_CLASSES}
        if name in NO_AUX_LOGITS:
            kwargs.update(aux_logits=False, init_weights=True)
        cases.append(Case(f"torch/{name}", "torch", _torch_builder(tvm.get_model_builder(name), kwargs),
                          [f"{BATCH},3,{size},{size}"], class_ids(), "CrossEntropyLoss"))
    for name in tvm.list_models(module=tvm.segmentation):
        kwargs = {"weights": None, "weights_backbone": None, "num_classes": NUM_CLASSES}
        if not name.startswith("lraspp"):   # LRASPP has no auxiliary classifier
            kwargs["aux_loss"] = False
        size = SEGMENTATION_IMAGE
        cases.append(Case(f"torch/segmentation/{name}", "torch", _torch_builder(tvm.get_model_builder(name), kwargs),
                          [f"{BATCH},3,{size},{size}"], mask(size, size), "CrossEntropyLoss"))
    for name in tvm.list_models(module=tvm.video):
        frames, size = VIDEO_CLIP.get(name, SMALL_CLIP)
        kwargs = {"weights": None, "num_classes": NUM_CLASSES}
        cases.append(Case(f"torch/video/{name}", "torch", _torch_builder(tvm.get_model_builder(name), kwargs),
                          [f"{BATCH},3,{frames},{size},{size}"], class_ids(), "CrossEntropyLoss"))
    return cases


def _torch_builder(builder, kwargs):
    return lambda: builder(**kwargs)


# timm and Hugging Face classifiers, as fine-tuning code builds them (stochastic depth and LayerDrop on, as their
# training recipes set them); skipped when the library is not installed.
TIMM_MODELS = ("resnet18", "efficientnet_b0", "convnext_atto", "vit_tiny_patch16_224", "deit_tiny_distilled_patch16_224",
               "swin_tiny_patch4_window7_224", "mobilenetv3_small_100", "regnetx_002", "ghostnet_100", "levit_128s",
               "mixer_s16_224", "efficientformer_l1", "maxvit_nano_rw_256", "caformer_s18")
TEXT_LENGTH = 16


def library_cases() -> list[Case]:
    cases = []
    try:
        import timm
    except ImportError:
        timm = None
    for name in TIMM_MODELS if timm is not None else ():
        size = 256 if "256" in name else 224 if any(k in name for k in ("224", "levit", "efficientformer")) \
            else SMALL_IMAGE
        build = _timm_builder(name)
        cases.append(Case(f"timm/{name}", "torch", build, [f"{BATCH},3,{size},{size}"], class_ids(),
                          "CrossEntropyLoss"))
    try:
        import transformers  # noqa: F401
    except ImportError:
        return cases
    for name in ("BertForSequenceClassification", "DistilBertForSequenceClassification",
                 "RobertaForSequenceClassification", "GPT2ForSequenceClassification"):
        cases.append(Case(f"transformers/{name}", "torch", _text_classifier(name), [f"{BATCH},{TEXT_LENGTH}:int64"],
                          class_ids(), "CrossEntropyLoss"))
    cases.append(Case("transformers/ViTForImageClassification", "torch", _vit_classifier, [f"{BATCH},3,32,32"],
                      class_ids(), "CrossEntropyLoss"))
    cases.append(Case("transformers/Wav2Vec2ForSequenceClassification (layerdrop 0.1)", "torch", _audio_classifier,
                      [f"{BATCH},4000"], class_ids(), "CrossEntropyLoss"))
    return cases


def _timm_builder(name: str):
    def build():
        import timm

        depth = {} if name.startswith("ghostnet") else {"drop_path_rate": 0.1}   # GhostNet has no stochastic depth
        return timm.create_model(name, pretrained=False, num_classes=NUM_CLASSES, **depth)
    return build


def _text_classifier(name: str):
    def build():
        import transformers

        config_class = getattr(transformers, name.replace("ForSequenceClassification", "Config"))
        sizes = {"DistilBertForSequenceClassification": {"dim": 32, "hidden_dim": 64, "n_layers": 2, "n_heads": 2},
                 "GPT2ForSequenceClassification": {"n_embd": 32, "n_layer": 2, "n_head": 2, "pad_token_id": 0}}
        config = config_class(vocab_size=100, num_labels=NUM_CLASSES, **sizes.get(name, {
            "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}))
        return getattr(transformers, name)(config)
    return build


def _vit_classifier():
    import transformers

    config = transformers.ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                                    num_attention_heads=2, intermediate_size=64, num_labels=NUM_CLASSES)
    return transformers.ViTForImageClassification(config)


def _audio_classifier():
    import transformers

    config = transformers.Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                         intermediate_size=64, conv_dim=(16, 16), conv_stride=(5, 4),
                                         conv_kernel=(10, 8), num_feat_extract_layers=2, layerdrop=0.1,
                                         num_labels=NUM_CLASSES, classifier_proj_size=16)
    return transformers.Wav2Vec2ForSequenceClassification(config)


# ---------------------------------------------------------------------------------------------------------- keras

# Extra Keras cases: a backbone without its top, global-average pooled, with a new 5-way head, in the three ways
# people write it (functional on base.output, Sequential around the nested backbone, and a logits head).
KERAS_HEADLESS = ("ResNet50", "MobileNetV2", "EfficientNetB0")


def keras_cases() -> list[Case]:
    import keras

    apps = sorted(name for name in dir(keras.applications)
                  if name[:1].isupper() and callable(getattr(keras.applications, name)))
    cases = []
    for name in apps:
        cases.append(Case(f"keras/{name}", "keras", _keras_full(name), [], class_ids(), None))
    headless = [
        ("ResNet50", "functional", "softmax"),
        ("MobileNetV2", "sequential", "softmax"),
        ("EfficientNetB0", "functional", "logits"),
    ]
    for name, style, head in headless:
        cases.append(Case(f"keras/{name}+avgpool+Dense({NUM_CLASSES}) [{style}, {head}]", "keras",
                          _keras_headless(name, style, head), [], class_ids(), None))
    return cases


def _keras_full(name: str):
    def build():
        import keras

        model = getattr(keras.applications, name)(weights=None, classes=NUM_CLASSES)   # its default input size
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        return model
    return build


def _keras_headless(name: str, style: str, head: str):
    def build():
        import keras

        app = getattr(keras.applications, name)
        size = 224
        base = app(include_top=False, weights=None, input_shape=(size, size, 3), pooling="avg")
        activation = None if head == "logits" else "softmax"
        dense = keras.layers.Dense(NUM_CLASSES, activation=activation, name="head")
        if style == "functional":
            model = keras.Model(base.input, dense(base.output))
        else:
            model = keras.Sequential([keras.Input((size, size, 3)), base, dense])
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=head == "logits")
        model.compile(optimizer="adam", loss=loss)
        return model
    return build


def keras_input(model) -> list[str]:
    """The model's declared input size with the batch filled in (channels last); a free size (MobileNetV3 declares
    [None, None, 3]) is given the ImageNet 224."""
    shape = tuple(model.inputs[0].shape)[1:]
    return [",".join(str(224 if d is None else d) for d in (BATCH, *shape))]


# ---------------------------------------------------------------------------------------------------------- running

@dataclass
class Outcome:
    name: str
    seconds: float
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    failure: str | None = None   # result.error, shapecheck raising, or the model not building
    audit_seconds: float | None = None   # the training-signal audit's share (None: it did not run)


def first_line(text: str) -> str:
    return next((line.strip() for line in str(text).splitlines() if line.strip()), "")


def run_case(case: Case, workdir: Path, verbose: bool) -> Outcome:
    start = time.perf_counter()
    outcome = Outcome(case.name, 0.0)
    model = loaded = result = None
    try:
        try:
            adapter_module = targets._adapter(case.framework)
        except Exception as exc:
            outcome.failure = f"shapecheck's {case.framework} adapter did not import: {first_line(exc)}"
            return outcome
        try:
            recorder = getattr(adapter_module, "recording_definition_sites", None)
            if recorder is not None:   # as the CLI does for a factory: remember where each layer was created
                with recorder() as sites:
                    model = case.build()
            else:
                sites = {}
                model = case.build()
        except Exception as exc:
            outcome.failure = f"model did not build: {type(exc).__name__}: {first_line(exc)}"
            return outcome
        try:
            inputs = case.inputs or keras_input(model)
            labels_path = workdir / f"labels_{abs(hash(case.name))}.npy"
            np.save(labels_path, case.labels)
            loaded = targets.LoadedTarget(case.name, model, targets.adapter_for(model), sites)
            flags = Flags(inputs=inputs, loss=case.loss, labels_file=str(labels_path))
            result = pipeline.run(flags.request(loaded.target, loaded))
        except Exception as exc:
            outcome.failure = f"shapecheck raised {type(exc).__name__}: {first_line(exc)}"
            if verbose:
                traceback.print_exc()
            return outcome
        if result.error:
            outcome.failure = f"{result.error.get('kind')}: {first_line(result.error.get('message'))}"
        audit = result.trace.audit if result.trace is not None else None
        outcome.audit_seconds = audit.seconds if audit is not None else None
        for finding in result.findings:
            text = f"{finding.rule} {first_line(finding.message)}"
            (outcome.errors if finding.severity == "error" else outcome.warnings).append(text)
        if verbose and result.trace is not None:
            trace = result.trace
            loss = result.loss.name if result.loss else None
            print(f"    input {inputs}; output {_output_shapes(trace)}; loss {loss}; "
                  f"labels {list(case.labels.shape)} {case.labels.dtype}", flush=True)
            for note in trace.notes:
                print(f"    note: {note}", flush=True)
        return outcome
    finally:
        outcome.seconds = time.perf_counter() - start
        del model, loaded, result
        _release(case.framework)


def _output_shapes(trace) -> str:
    outputs = getattr(trace, "outputs", None)
    if not outputs:
        return "none"
    return ", ".join(f"{name}={list(getattr(meta, 'shape', meta))}" for name, meta in outputs.items())


def _release(framework: str) -> None:
    if framework == "keras" and "keras" in sys.modules:
        sys.modules["keras"].backend.clear_session()
    gc.collect()


def print_outcome(outcome: Outcome) -> None:
    if outcome.failure:
        status = f"CHECK FAILED: {outcome.failure}"
    elif outcome.errors:
        status = "; ".join(outcome.errors)
    else:
        status = "clean"
    if outcome.warnings:
        status += f"  [warnings: {'; '.join(outcome.warnings)}]"
    audit = f"{outcome.audit_seconds:6.2f}s" if outcome.audit_seconds is not None else "     - "
    print(f"{outcome.name:<58} {outcome.seconds:7.1f}s  audit {audit}  {status}", flush=True)


def run_framework(framework: str, only: str | None, verbose: bool) -> list[Outcome]:
    start = time.perf_counter()
    if framework == "torch":
        adapters.keep_triton_out_after_tensorflow()
        import torch

        torch.manual_seed(0)
        cases = torch_cases() + library_cases()
    else:
        cases = keras_cases()
    cases = [c for c in cases if not only or only.lower() in c.name.lower()]
    print(f"== {framework}: {len(cases)} models", flush=True)
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="shapecheck_zoo_") as tmp:
        for case in cases:
            outcome = run_case(case, Path(tmp), verbose)
            print_outcome(outcome)
            outcomes.append(outcome)
    summarize(framework, outcomes, time.perf_counter() - start)
    return outcomes


def summarize(label: str, outcomes: list[Outcome], seconds: float) -> None:
    with_errors = [o for o in outcomes if o.errors]
    failed = [o for o in outcomes if o.failure]
    print(f"-- {label}: {len(outcomes)} models checked, {len(with_errors)} with errors, "
          f"{len(failed)} whose check failed, {seconds:.1f}s total", flush=True)
    audited = sorted(o.audit_seconds for o in outcomes if o.audit_seconds is not None)
    if audited:
        print(f"-- {label}: training-signal audit ran on {len(audited)} models: median {audited[len(audited) // 2]:.2f}s, "
              f"worst {audited[-1]:.2f}s", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--framework", choices=("torch", "keras", "all"), default="all")
    parser.add_argument("--only", help="check only the models whose name contains this (case-insensitive)")
    parser.add_argument("--isolate", action="store_true",
                        help="with --framework all: run each framework in its own child process")
    parser.add_argument("--verbose", "-v", action="store_true", help="print shapes, notes and tracebacks")
    options = parser.parse_args()
    frameworks = ["torch", "keras"] if options.framework == "all" else [options.framework]
    start = time.perf_counter()
    if options.isolate and len(frameworks) > 1:
        codes = []
        for framework in frameworks:
            argv = [sys.executable, __file__, "--framework", framework]
            argv += ["--only", options.only] if options.only else []
            argv += ["--verbose"] if options.verbose else []
            codes.append(subprocess.call(argv))
        print(f"== total {time.perf_counter() - start:.1f}s; exit codes {dict(zip(frameworks, codes))}")
        return 1 if any(codes) else 0
    outcomes = []
    for framework in frameworks:
        outcomes += run_framework(framework, options.only, options.verbose)
    if len(frameworks) > 1:
        summarize("total", outcomes, time.perf_counter() - start)
    return 1 if any(o.errors for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
