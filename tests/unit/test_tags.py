"""Tag parsing and merging: signature + datagrok tags → catalog parameters."""

from __future__ import annotations

import json

from modelbus_catalog.entry import ModelFacts, build_entry
from modelbus_catalog.tags import merge_tags, parse_annotations
from modelbus_contract.messages import DiscoveryEvent

PYFUNC = {"python_function": {"python_version": "3.11.7", "loader_module": "mlflow.pyfunc.model"}}


def _signature(inputs: list[dict[str, object]], outputs: list[dict[str, object]] | None = None):
    sig: dict[str, object] = {"inputs": json.dumps(inputs)}
    sig["outputs"] = json.dumps(outputs) if outputs is not None else None
    return sig


def _event(model_tags=None, version_tags=None) -> DiscoveryEvent:
    return DiscoveryEvent(
        kind="found", name="m", version="1",
        model_tags={"datagrok": "", **(model_tags or {})},
        version_tags=version_tags or {}, fingerprint="x",
    )


def test_datagrok_sample_without_name_tags_takes_names_from_signature() -> None:
    facts = ModelFacts(
        signature=_signature(
            [{"type": "string", "name": "Molecule", "required": True}],
            [{"type": "double", "name": "Predicted", "required": True}],
        ),
        flavors=PYFUNC,
    )
    entry = build_entry(_event(), facts)
    assert [(p.name, p.type, p.arrow_type) for p in entry.inputs] == [
        ("Molecule", "string", "string")
    ]
    assert [(p.name, p.type, p.arrow_type) for p in entry.outputs] == [
        ("Predicted", "double", "double")
    ]
    assert entry.status == "ready"
    assert entry.problems == []
    assert entry.python_version == "3.11.7"


def test_missing_signature_uses_tags_and_says_so() -> None:
    tags = {"datagrok-inputs-0-name": "smiles", "datagrok-inputs-0-semtype": "Molecule"}
    entry = build_entry(_event(tags), ModelFacts(signature=None, flavors=PYFUNC))
    assert [(p.name, p.semtype, p.type) for p in entry.inputs] == [("smiles", "Molecule", None)]
    assert entry.outputs == []
    assert entry.has_signature is False
    assert any("no signature" in p for p in entry.problems)
    assert entry.status == "ready"


def test_tags_only_on_outputs_leave_inputs_from_the_signature() -> None:
    facts = ModelFacts(
        signature=_signature(
            [{"type": "double", "name": "x"}], [{"type": "long", "name": "class"}]
        ),
        flavors=PYFUNC,
    )
    tags = {"datagrok-outputs-0-name": "Activity", "datagrok-outputs-0-semtype": "Score"}
    entry = build_entry(_event(tags), facts)
    assert [(p.name, p.semtype) for p in entry.inputs] == [("x", None)]
    assert [(p.name, p.semtype, p.arrow_type) for p in entry.outputs] == [
        ("Activity", "Score", "int64")
    ]


def test_index_beyond_the_signature_is_a_problem_not_a_crash() -> None:
    facts = ModelFacts(signature=_signature([{"type": "string", "name": "a"}]), flavors=PYFUNC)
    entry = build_entry(_event({"datagrok-inputs-3-name": "ghost"}), facts)
    assert [p.name for p in entry.inputs] == ["a"]
    assert any("index 3 is beyond" in p for p in entry.problems)
    assert entry.status == "ready"


def test_non_integer_index_and_unknown_type_are_problems() -> None:
    parsed = parse_annotations(
        {
            "datagrok-inputs-one-name": "a",
            "datagrok-inputs-0-colour": "red",
            "datagrok-params-0-name": "b",
            "datagrok-inputs--1-name": "c",
            "datagrok-whatever": "d",
            "datagrok": "",
            "other-tag": "e",
        }
    )
    assert parsed.annotations == {}
    joined = "\n".join(parsed.problems)
    assert "'one'" in joined
    assert "'colour'" in joined
    assert "'params'" in joined
    assert "'-1'" in joined
    assert "datagrok-whatever" in joined
    assert len(parsed.problems) == 5


def test_version_tags_override_model_tags_key_by_key() -> None:
    merged = merge_tags(
        {"datagrok-inputs-0-name": "model", "datagrok-inputs-0-semtype": "Molecule"},
        {"datagrok-inputs-0-name": "version"},
    )
    assert merged == {"datagrok-inputs-0-name": "version", "datagrok-inputs-0-semtype": "Molecule"}
    facts = ModelFacts(signature=_signature([{"type": "string", "name": "s"}]), flavors=PYFUNC)
    entry = build_entry(
        _event({"datagrok-inputs-0-name": "model"}, {"datagrok-inputs-0-name": "version"}), facts
    )
    assert entry.inputs[0].name == "version"
    assert entry.tags["datagrok-inputs-0-name"] == "version"


def test_semtype_without_name_keeps_the_signature_name() -> None:
    facts = ModelFacts(signature=_signature([{"type": "string", "name": "smiles"}]), flavors=PYFUNC)
    entry = build_entry(_event({"datagrok-inputs-0-semtype": "Molecule"}), facts)
    assert (entry.inputs[0].name, entry.inputs[0].semtype) == ("smiles", "Molecule")
    assert entry.problems == []


def test_semtype_without_any_name_marks_the_entry_invalid() -> None:
    facts = ModelFacts(signature=None, flavors=PYFUNC)
    entry = build_entry(_event({"datagrok-inputs-0-semtype": "Molecule"}), facts)
    assert entry.inputs[0].name is None
    assert entry.status == "invalid"
    assert any("semtype but no name" in p for p in entry.problems)


def test_gap_in_tag_indices_without_signature_is_reported() -> None:
    tags = {"datagrok-inputs-0-name": "a", "datagrok-inputs-2-name": "c"}
    entry = build_entry(_event(tags), ModelFacts(signature=None, flavors=PYFUNC))
    assert [p.name for p in entry.inputs] == ["a", None, "c"]
    assert entry.status == "invalid"
    assert any("[1]" in p for p in entry.problems)


def test_unnamed_tensor_input_named_by_tag() -> None:
    facts = ModelFacts(
        signature=_signature(
            [{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 4]}}]
        ),
        flavors=PYFUNC,
    )
    entry = build_entry(_event({"datagrok-inputs-0-name": "features"}), facts)
    assert entry.inputs[0].name == "features"
    assert (entry.inputs[0].type, entry.inputs[0].dtype, entry.inputs[0].shape) == (
        "tensor", "float64", [-1, 4]
    )
    assert entry.status == "ready"


def test_unreadable_signature_is_a_problem() -> None:
    facts = ModelFacts(signature={"inputs": "{not json", "outputs": None}, flavors=PYFUNC)
    entry = build_entry(_event(), facts)
    assert any("signature inputs" in p for p in entry.problems)


def test_model_without_readable_files_is_invalid() -> None:
    entry = build_entry(_event(), ModelFacts(problems=["model files unreadable: gone"]))
    assert entry.status == "invalid"
    assert entry.problems[0] == "model files unreadable: gone"
