"""What LanceDB's `test_pydantic.py` promises: pydantic models as Arrow schemas (`pydantic_to_schema`,
`LanceModel`), `Vector(n)` and `MultiVector(n)` types, and models back from search results."""

import json
from datetime import date, datetime
from enum import Enum
from typing import List, Optional, Tuple

import pyarrow as pa
import pydantic
import pytest
from pydantic import BaseModel, Field

from vectorlane.pydantic import LanceModel, MultiVector, Vector, pydantic_to_schema


class Point(pydantic.BaseModel):
    a: str
    b: Optional[float]


class Split(pydantic.BaseModel):
    start_frame: int
    end_frame: int


SPLIT = pa.struct([pa.field("start_frame", pa.int64(), False), pa.field("end_frame", pa.int64(), False)])


def test_scalars_lists_structs_dates_and_zones():
    class Everything(pydantic.BaseModel):
        id: int
        s: str
        vec: list[float]
        li: List[int]
        lili: list[list[float]]
        litu: List[Tuple[float, float]]
        opt: Optional[str] = None
        st: Point
        dt: date
        dtt: datetime
        dt_with_tz: datetime = Field(json_schema_extra={"tz": "Asia/Shanghai"})

    assert pydantic_to_schema(Everything) == pa.schema([
        pa.field("id", pa.int64(), False), pa.field("s", pa.utf8(), False),
        pa.field("vec", pa.list_(pa.float64()), False), pa.field("li", pa.list_(pa.int64()), False),
        pa.field("lili", pa.list_(pa.list_(pa.float64())), False),
        pa.field("litu", pa.list_(pa.list_(pa.float64())), False), pa.field("opt", pa.utf8(), True),
        pa.field("st", pa.struct([pa.field("a", pa.utf8(), False), pa.field("b", pa.float64(), True)]), False),
        pa.field("dt", pa.date32(), False), pa.field("dtt", pa.timestamp("us"), False),
        pa.field("dt_with_tz", pa.timestamp("us", tz="Asia/Shanghai"), False)])


def test_every_spelling_of_optional_is_nullable():
    class Optionals(pydantic.BaseModel):
        a: str | None
        b: None | str
        c: Optional[str]

    assert pydantic_to_schema(Optionals) == pa.schema([pa.field(n, pa.utf8(), True) for n in "abc"])


@pytest.mark.parametrize("annotation, nullable, item_nullable", [
    (Optional[Split], True, None), (list[Split], False, True), (Optional[list[Split]], True, True),
    (list[Optional[Split]], False, True), (list[Split | None], False, True),
    (Optional[list[Optional[Split]]], True, True)])
def test_nested_models_in_lists_and_optionals(annotation, nullable, item_nullable):
    Model = pydantic.create_model("Model", id=(str, ...), splits=(annotation, None if nullable else ...))
    expected = SPLIT if item_nullable is None else pa.list_(pa.field("item", SPLIT, item_nullable))
    assert pydantic_to_schema(Model) == pa.schema([pa.field("id", pa.utf8(), False),
                                                   pa.field("splits", expected, nullable)])


def test_a_bare_generic_is_a_clear_type_error():
    for bare in (List, Tuple):
        class Bare(pydantic.BaseModel):
            items: bare

        with pytest.raises(TypeError, match="unsupported type"):
            pydantic_to_schema(Bare)


def test_vectors_are_nullable_unless_declared_otherwise():
    class Strict(pydantic.BaseModel):
        vec: Vector(16, nullable=False)

    class Default(pydantic.BaseModel):
        vec: Vector(16)

    assert pydantic_to_schema(Strict) == pa.schema([pa.field("vec", pa.list_(pa.float32(), 16), False)])
    assert pydantic_to_schema(Default) == pa.schema([pa.field("vec", pa.list_(pa.float32(), 16), True)])


def test_a_bare_vector_is_a_clear_error():
    namespace = {"__name__": "bare_vector_model", "LanceModel": LanceModel, "Vector": Vector}
    with pytest.raises(TypeError, match=r"Vector must be parameterized.*Vector\(128\)"):
        exec("class TestModel(LanceModel):\n    vector: Vector", namespace)


def test_a_vector_fields_json_and_json_schema():
    class Model(pydantic.BaseModel):
        vec: Vector(16)
        li: List[int]

    data = Model(vec=list(range(16)), li=[1, 2, 3])
    assert json.loads(data.model_dump_json()) == {"vec": list(range(16)), "li": [1, 2, 3]}
    assert pydantic_to_schema(Model) == pa.schema([pa.field("vec", pa.list_(pa.float32(), 16)),
                                                   pa.field("li", pa.list_(pa.int64()), False)])
    assert Model.model_json_schema() == {
        "properties": {"vec": {"items": {"type": "number"}, "maxItems": 16, "minItems": 16, "title": "Vec",
                               "type": "array"},
                       "li": {"items": {"type": "integer"}, "title": "Li", "type": "array"}},
        "required": ["vec", "li"], "title": "Model", "type": "object"}


def test_a_vector_of_the_wrong_length_is_a_validation_error():
    class Model(pydantic.BaseModel):
        vec: Vector(8)

    for wrong in (range(9), range(7)):
        with pytest.raises(pydantic.ValidationError):
            Model(vec=wrong)
    Model(vec=range(8))


def test_a_lance_model_with_defaults():
    class Model(LanceModel):
        vector: Vector(16) = Field(default=[0.0] * 16)
        li: List[int] = Field(default=[1, 2, 3])

    assert pydantic_to_schema(Model) == Model.to_arrow_schema()
    assert Model.field_names() == ["vector", "li"]
    assert Model() == Model(vec=[0.0] * 16, li=[1, 2, 3])


def test_optional_nested_models_inside_a_subclassed_lance_model():
    class Media(BaseModel):
        url: str
        filename: Optional[str]
        data: bytes

    class Location(BaseModel):
        description: Optional[str]
        latitude: str

    class Message(BaseModel):
        id: str
        fromMe: bool
        media: Media
        location: Optional[Location]
        vCards: Optional[List[str]]

    class AnyEvent(LanceModel):
        id: str
        metadata: Optional[str] = None

    class MessageEvent(AnyEvent):
        payload: Message

    payload = pydantic_to_schema(MessageEvent).field("payload")
    assert payload.type == pa.struct([
        pa.field("id", pa.utf8(), False), pa.field("fromMe", pa.bool_(), False),
        pa.field("media", pa.struct([pa.field("url", pa.utf8(), False), pa.field("filename", pa.utf8(), True),
                                     pa.field("data", pa.binary(), False)]), False),
        pa.field("location", pa.struct([pa.field("description", pa.utf8(), True),
                                        pa.field("latitude", pa.utf8(), False)]), True),
        pa.field("vCards", pa.list_(pa.utf8()), True)])
    assert [f.name for f in pydantic_to_schema(MessageEvent)] == ["id", "metadata", "payload"]


def test_multi_vectors():
    class Model(pydantic.BaseModel):
        vec: MultiVector(8)

    assert pydantic_to_schema(Model) == pa.schema([pa.field("vec", pa.list_(pa.list_(pa.float32(), 8)), True)])
    for wrong in ([[1.0] * 7], [[1.0] * 9]):
        with pytest.raises(pydantic.ValidationError):
            Model(vec=wrong)
    Model(vec=[[1.0] * 8])
    Model(vec=[[1.0] * 8, [2.0] * 8])
    Model(vec=[])

    class Strict(pydantic.BaseModel):
        vec: MultiVector(16, nullable=False)

    assert pydantic_to_schema(Strict) == pa.schema([pa.field("vec", pa.list_(pa.list_(pa.float32(), 16)), False)])


def test_a_multi_vector_in_a_lance_model():
    class Model(LanceModel):
        id: int
        vectors: MultiVector(16) = Field(default=[[0.0] * 16])

    assert pydantic_to_schema(Model) == Model.to_arrow_schema()
    assert Model.field_names() == ["id", "vectors"] and Model(id=1).vectors == [[0.0] * 16]


def test_aliases_read_result_columns(mem_db):
    table = mem_db.create_table("items", data=[{"vector": [3.1, 4.1], "item": "foo", "price": 10.0},
                                               {"vector": [5.9, 6.5], "item": "bar", "price": 20.0}])

    class Item(LanceModel):
        name: str = Field(alias="item")
        price: float
        distance: float = Field(alias="_distance")

    model = table.search([5.9, 6.5]).distance_type("cosine").limit(1).to_pydantic(Item)[0]
    assert model.name == "bar" and model.distance < 0.01


def test_enums_map_to_their_values_type():
    class Status(str, Enum):
        PENDING = "pending"
        DONE = "done"

    class Priority(int, Enum):
        LOW = 1
        HIGH = 3

    class Model(pydantic.BaseModel):
        status: Status
        priority: Priority
        opt_status: Optional[Status] = None

    schema = pydantic_to_schema(Model)
    assert schema.field("status").type == pa.dictionary(pa.int32(), pa.utf8())
    assert schema.field("priority").type == pa.int64()
    assert schema.field("opt_status").type == pa.dictionary(pa.int32(), pa.utf8())
    assert schema.field("opt_status").nullable


def test_models_with_nested_structs_dates_and_enums_round_trip_through_a_table(mem_db):
    class Kind(str, Enum):
        A = "a"
        B = "b"

    class Meta(BaseModel):
        source: str
        timestamp: datetime

    class Document(BaseModel):
        content: str
        meta: Meta

    class Row(LanceModel):
        id: str
        vector: Vector(2)
        li: List[int]
        payload: Document
        kind: Kind
        day: date

    table = mem_db.create_table("mytable", schema=Row, mode="overwrite")
    assert table.schema == Row.to_arrow_schema()
    expected = Row(id="id", vector=[0.0, 0.0], li=[1, 2, 3], kind=Kind.B, day=date(2024, 2, 29),
                   payload=Document(content="foo", meta=Meta(source="bar", timestamp=datetime(2024, 1, 2, 3, 4))))
    assert table.add([expected]).version == 2
    assert table.search([0.0, 0.0]).limit(1).to_pydantic(Row)[0] == expected
    assert len(table.search([0.0, 0.0]).limit(1).to_pandas(flatten=1).columns) == 8  # _distance is added
    assert len(table.search([0.0, 0.0]).limit(1).to_pandas(flatten=True).columns) == 9
