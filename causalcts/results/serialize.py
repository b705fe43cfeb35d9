"""Lossless JSON encoding of results fields (never pickle).

Plain JSON loses types that results hold: tuples become lists, NaN is not valid JSON, integer dict
keys become strings, and a pandas index loses its names and dtypes. :func:`encode` writes such values
as small tagged objects (``{"__tuple__": [...]}``, ``{"__series__": ...}``) and :func:`decode` turns
them back, so ``decode(json.loads(json.dumps(encode(v))))`` equals ``v`` for every value a result
holds: None, bool, int, float (NaN and infinities included), str, list, tuple, dict, NumPy scalars
and arrays, pandas Series, DataFrames and (Multi)Indexes with their names and dtypes, timestamps, NumPy
random Generators (their exact state) and dataclasses defined in causalcts. Floats are written
with ``repr`` precision, so they come back bit-identical.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from causalcts.errors import CausalCTSError

__all__ = ["decode", "encode"]

_TAGS = (
    "__float__",
    "__tuple__",
    "__dict__",
    "__ndarray__",
    "__series__",
    "__frame__",
    "__index__",
    "__timestamp__",
    "__dataclass__",
    "__generator__",
)


def _float(v: float):
    return v if math.isfinite(v) else {"__float__": repr(v)}


def _scalar(v):
    """A NumPy/pandas scalar as a JSON value (datetimes tagged)."""
    if isinstance(v, (pd.Timestamp, np.datetime64)):
        return {"__timestamp__": pd.Timestamp(v).isoformat()}
    if isinstance(v, np.generic):
        v = v.item()
    return encode(v)


def _index(idx: pd.Index) -> dict:
    if isinstance(idx, pd.MultiIndex):
        levels = [_index(idx.get_level_values(i)) for i in range(idx.nlevels)]
        return {"__index__": "multi", "names": list(idx.names), "levels": levels}
    return {"__index__": "flat", "name": idx.name, "dtype": str(idx.dtype), "values": [_scalar(v) for v in idx]}


def _index_back(d: dict) -> pd.Index:
    if d["__index__"] == "multi":
        levels = [_index_back(lev) for lev in d["levels"]]
        return pd.MultiIndex.from_arrays(levels, names=d["names"])
    values = [decode(v) for v in d["values"]]
    dtype = d["dtype"]
    if dtype.startswith("datetime64"):
        return pd.DatetimeIndex(pd.to_datetime(values), name=d["name"]).astype(dtype)
    try:
        return pd.Index(values, dtype=dtype, name=d["name"])
    except (TypeError, ValueError):
        return pd.Index(values, name=d["name"])


def _column(values: np.ndarray) -> list:
    return [_scalar(v) for v in values]


def encode(value: Any) -> Any:
    """A JSON-ready form of ``value`` that :func:`decode` turns back into an equal value.

    Examples
    --------
    >>> import json
    >>> import pandas as pd
    >>> s = pd.Series([0.1, float("nan")], index=pd.MultiIndex.from_tuples([(1, 2), (1, 3)], names=["team", "week"]))
    >>> back = decode(json.loads(json.dumps(encode({"lags": (2, None), "resid": s}))))
    >>> back["lags"], back["resid"].equals(s), list(back["resid"].index.names)
    ((2, None), True, ['team', 'week'])
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (float, np.floating)):
        return _float(float(value))
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, (dict, MappingProxyType)):
        if all(isinstance(k, str) and k not in _TAGS for k in value):
            return {k: encode(v) for k, v in value.items()}
        return {"__dict__": [[encode(k), encode(v)] for k, v in value.items()]}
    if isinstance(value, (pd.Timestamp, np.datetime64)):
        return _scalar(value)
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise CausalCTSError(f"Cannot save a NumPy array of dtype {value.dtype} in JSON results.")
        return {"__ndarray__": encode(value.tolist()), "dtype": str(value.dtype), "shape": list(value.shape)}
    if isinstance(value, pd.Series):
        return {
            "__series__": _column(value.to_numpy()),
            "dtype": str(value.dtype),
            "name": encode(value.name),
            "index": _index(value.index),
        }
    if isinstance(value, pd.DataFrame):
        return {
            "__frame__": {str(i): _column(value.iloc[:, i].to_numpy()) for i in range(value.shape[1])},
            "dtypes": [str(t) for t in value.dtypes],
            "columns": _index(value.columns),
            "index": _index(value.index),
        }
    if isinstance(value, pd.Index):
        return _index(value)
    if isinstance(value, np.random.Generator):  # a seed passed as a Generator: keep its exact state
        state = value.bit_generator.state
        return {"__generator__": state["bit_generator"], "state": encode(state)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        if not cls.__module__.startswith("causalcts."):
            raise CausalCTSError(f"Cannot save an object of type {cls.__qualname__} in JSON results.")
        fields = {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"__dataclass__": f"{cls.__module__}:{cls.__qualname__}", "fields": fields}
    raise CausalCTSError(
        f"Cannot save a value of type {type(value).__name__} in JSON results ({value!r:.80}); "
        "store numbers, strings, lists, dicts, arrays or pandas objects."
    )


def decode(value: Any) -> Any:
    """Invert :func:`encode`."""
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__float__" in value:
        return float(value["__float__"])
    if "__tuple__" in value:
        return tuple(decode(v) for v in value["__tuple__"])
    if "__dict__" in value:
        return {decode(k): decode(v) for k, v in value["__dict__"]}
    if "__timestamp__" in value:
        return pd.Timestamp(value["__timestamp__"])
    if "__ndarray__" in value:
        arr = np.array(decode(value["__ndarray__"]), dtype=value["dtype"])
        return arr.reshape(value["shape"])
    if "__index__" in value:
        return _index_back(value)
    if "__series__" in value:
        values = [decode(v) for v in value["__series__"]]
        index = _index_back(value["index"])
        return pd.Series(_array(values, value["dtype"]), index=index, name=decode(value["name"]))
    if "__frame__" in value:
        columns = _index_back(value["columns"])
        index = _index_back(value["index"])
        data = {
            i: _array([decode(v) for v in value["__frame__"][str(i)]], dtype) for i, dtype in enumerate(value["dtypes"])
        }
        frame = pd.DataFrame(data, index=index)
        frame.columns = columns
        return frame
    if "__generator__" in value:
        name = value["__generator__"]
        if name not in ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64"):
            raise CausalCTSError(f"Unknown NumPy bit generator {name!r} in saved results.")
        bit = getattr(np.random, name)()
        bit.state = decode(value["state"])
        return np.random.Generator(bit)
    if "__dataclass__" in value:
        module, _, qualname = value["__dataclass__"].partition(":")
        if not module.startswith("causalcts."):
            raise CausalCTSError(f"Refusing to load {value['__dataclass__']!r}: only causalcts classes are loaded.")
        cls: Any = importlib.import_module(module)
        for part in qualname.split("."):
            cls = getattr(cls, part)
        return cls(**{k: decode(v) for k, v in value["fields"].items()})
    return {k: decode(v) for k, v in value.items()}


def _array(values: list, dtype: str):
    if dtype.startswith("datetime64"):
        return pd.to_datetime(values).astype(dtype)
    try:
        return pd.array(values, dtype=dtype) if dtype in ("str", "string", "object") else np.array(values, dtype=dtype)
    except (TypeError, ValueError):
        return np.array(values, dtype=object)
