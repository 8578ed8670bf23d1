"""Fix recipes as values: every `Recipes` method returns a `Recipe` whose edits match its text, label recipes are built
from label steps as data, and composed recipes keep the edits of their parts. No framework is imported."""

from __future__ import annotations

import pytest

from shapecheck.edits import Edit, Recipe
from shapecheck.findings import Fix
from shapecheck.losses import resolve_loss
from shapecheck.recipes import _RECIPES, ReExport
from shapecheck.recipes.keras import KerasRecipes
from shapecheck.recipes.onnx import OnnxRecipes
from shapecheck.recipes.torch import TorchRecipes
from shapecheck.shapes import TensorMeta
from shapecheck.trace import Layer

FC = Layer("fc", "Linear", "linear", inputs=[TensorMeta((8, 512))], outputs=[TensorMeta((8, 1000))],
           config={"in_features": 512, "out_features": 1000}, declared={"in_features": 512})
LSTM = Layer("lstm", "LSTM", "rnn", config={"input_size": 32, "hidden_size": 48})
CE = resolve_loss("CrossEntropyLoss")

# arguments for one call of each recipe method
ARGUMENTS = {
    "replace_head": (FC, 1), "add_classifier": (512, 1), "join_features": ("cat",), "pad_spatial": ((1, 1),),
    "embed_columns": (), "same_padding": (), "crop_labels": ([2, 2],), "permute_output": ((0, 2, 1),),
    "remap_labels": (), "finite_rows": (), "linear": (512, 10), "replace_linear_input": (FC, 2048),
    "replace_conv_input": (Layer("conv", "Conv2d", "conv", config={"out_channels": 16, "kernel_size": (3, 3)}), 3),
    "labels_steps": (("unsqueeze", 1),), "labels_expression": (("cast", "float32"),), "squeeze": (1,),
    "unsqueeze": (1,), "to_dtype": ("float32",), "argmax": (1,), "logits_loss": (resolve_loss("BCELoss"),),
    "probability_loss": (CE,), "binary_loss": (True,), "class_index_loss": (CE,), "one_hot": ("labels", 5),
    "drop_first_class": (1,), "pool_after": (FC,), "activation_call": ("softmax", 1), "one_hot_loss": (CE,),
    "end_with": ("sigmoid",), "positive_mask": ("int64",), "unscale_ids": (255,), "loss": ("MSELoss",),
    "move_class_axis": (3,), "resize_output": (), "flatten_before": (FC, 2048), "gray_to_rgb": (3,),
    "repeat_channels": (3,), "channels_first": (4,), "swap_axes": (1, 2), "time_major": (3,),
    "replace_norm": (Layer("bn", "BatchNorm2d", "norm"), 32), "channels_last": (4,), "cast_input": ("float32",),
    "recurrent_batch_first": (LSTM,), "recurrent_input_size": (LSTM, 64), "return_last_step": (LSTM,),
    "pool_before": (FC,), "dynamic_batch_export": ("x",), "flatten_per_sample": (), "reshape_per_sample": ((32, 4),),
    "adaptive_pool": (8, 8),
}
FRAMEWORKS = [TorchRecipes(), KerasRecipes(), OnnxRecipes()]


def test_the_arguments_cover_every_recipe_method():
    assert set(ARGUMENTS) == set(_RECIPES)


@pytest.mark.parametrize("recipes", FRAMEWORKS, ids=lambda r: r.framework)
def test_every_recipe_method_returns_a_recipe_with_text(recipes):
    for name, arguments in ARGUMENTS.items():
        recipe = getattr(recipes, name)(*arguments)
        assert isinstance(recipe, Recipe) and recipe.text, name
        assert all(isinstance(edit, Edit) for edit in recipe.edits), name


def test_torch_recipes_carry_the_edits_their_text_shows():
    torch = TorchRecipes()
    statement = "model.fc = nn.Linear(model.fc.in_features, 1)"
    resize = (Edit("layer", "resize", (("out", 1),), "fc"),)
    assert torch.replace_head(FC, 1) == Recipe(statement, resize, insert=statement)
    assert torch.unsqueeze(1) == Recipe("labels = labels.unsqueeze(1)", (Edit("labels", "unsqueeze", (1,)),))
    assert torch.loss("CrossEntropyLoss", ignore_index=255) == Recipe(
        "criterion = nn.CrossEntropyLoss(ignore_index=255)",
        (Edit("loss", "use", ("CrossEntropyLoss", None, (("ignore_index", 255),))),))
    assert torch.probability_loss(CE) == Recipe("criterion = nn.NLLLoss()  # after log_softmax",
                                                (Edit("loss", "use", ("NLLLoss", None, ())),))


def test_keras_recipes_carry_the_edits_their_text_shows():
    keras = KerasRecipes()
    assert keras.replace_head(FC, 1, "sigmoid") == Recipe(
        'layers.Dense(1, activation="sigmoid", name="fc")',
        (Edit("layer", "resize", (("out", 1),), "fc"), Edit("layer", "set", (("activation", "sigmoid"),), "fc")))
    assert keras.to_dtype("float32") == Recipe('labels = labels.astype("float32")',
                                               (Edit("labels", "cast", ("float32",)),))
    assert keras.loss("CrossEntropyLoss", ignore_index=255).edits == (
        Edit("loss", "use", ("sparse_categorical_crossentropy", None, (("ignore_class", 255),))),)


def test_a_keras_applications_head_tells_the_patch_what_to_insert():
    head = KerasRecipes("keras.applications:ResNet50").replace_head(FC, 1, "sigmoid")
    assert head.text.endswith('model = keras.Model(base.input, layers.Dense(1, activation="sigmoid")(base.output))')
    assert head.insert == 'model = keras.Model(model.input, layers.Dense(1, activation="sigmoid")(model.output))'


def test_onnx_recipes_carry_the_edits_their_text_shows():
    onnx = OnnxRecipes()
    assert onnx.replace_head(FC, 1) == Recipe("re-export with the Linear at node 'fc' producing 1 outputs",
                                              (Edit("layer", "resize", (("out", 1),), "fc"),))
    assert onnx.unsqueeze(1) == Recipe("labels = np.expand_dims(labels, axis=1)", (Edit("labels", "unsqueeze", (1,)),))
    assert onnx.same_padding().edits == ()   # advice: nothing to verify


@pytest.mark.parametrize("steps, text", [
    ((("cast", "float32"), ("unsqueeze", 1)), "labels = labels.float().unsqueeze(1)"),
    ((("squeeze", 2),), "labels = labels.squeeze(2)"),
    ((("shift", -1),), "labels = labels - 1"),
    ((("shift", 6),), "labels = labels + 6"),
    ((("divide", 255.0),), "labels = labels / 255.0"),
    ((("first_channels", 1),), "labels = labels[:, :1]"),
    ((("reshape", (32,)),), "labels = labels.reshape(32,)"),
    ((("reshape", (8, 4)),), "labels = labels.reshape(8, 4)"),
])
def test_label_steps_render_as_before_and_are_applied_as_written(steps, text):
    for recipes in FRAMEWORKS:   # every framework prints the same method chain today
        recipe = recipes.labels_steps(*steps)
        assert recipe.text == text
        assert recipe.edits == tuple(Edit("labels", step[0], tuple(step[1:])) for step in steps)


def test_a_view_of_the_labels_is_shown_but_not_verified():
    recipe = TorchRecipes().labels_steps(("view", (8, 2)))
    assert recipe == Recipe("labels = labels.view(8, 2)")


def test_a_recipe_commented_with_another_carries_both_edits():
    torch = TorchRecipes()
    recipe = torch.loss("BCEWithLogitsLoss").commented(torch.labels_expression(("cast", "float32")))
    assert recipe.text == "criterion = nn.BCEWithLogitsLoss()  # labels.float()"
    assert recipe.edits == (Edit("loss", "use", ("BCEWithLogitsLoss", None, ())), Edit("labels", "cast", ("float32",)))


def test_a_re_exported_recipe_keeps_the_source_models_edits():
    recipes = ReExport(TorchRecipes(), OnnxRecipes())
    head = recipes.replace_head(FC, 1)
    assert head.text == "model.fc = nn.Linear(model.fc.in_features, 1)  # in the source model, then re-export"
    assert head.edits == (Edit("layer", "resize", (("out", 1),), "fc"),)
    assert recipes.permute_output((0, 2, 1)).text == "output = np.transpose(output, (0, 2, 1))"


def test_a_rule_can_apply_a_recipe_as_the_exact_op_edit():
    drop = (Edit("layer", "drop_op", ("softmax", 0)),)
    recipe = TorchRecipes().loss("CrossEntropyLoss")
    both = recipe.applied_as(drop + recipe.edits)
    assert both.text == recipe.text and both.edits == drop + recipe.edits


def test_a_fix_reads_its_edits_from_its_recipe():
    recipe = TorchRecipes().unsqueeze(1)
    fix = Fix("Add the missing axis", recipe)
    assert fix.edits == recipe.edits and str(fix) == "Add the missing axis: `labels = labels.unsqueeze(1)`"
    assert fix.to_json()["code"] == "labels = labels.unsqueeze(1)"
    advice = Fix("Load the mask with one channel", "Image.open(path).convert('L')")
    assert advice.edits == () and advice.to_json()["code"] == "Image.open(path).convert('L')"
    titled = Fix("Return raw logits", Recipe("", (Edit("layer", "drop_op", ("softmax", 0)),)))
    assert str(titled) == "Return raw logits" and titled.to_json()["code"] == "" and titled.edits
