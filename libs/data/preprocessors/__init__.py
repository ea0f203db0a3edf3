"""minray.data.preprocessors: fit statistics on a Dataset, then transform datasets or batches.

    scaler = StandardScaler(columns=["x"])
    train = scaler.fit_transform(train_ds)       # fit: aggregations; transform: map_batches
    test = scaler.transform(test_ds)
    scaler.transform_batch({"x": np.array([1.0])})   # a single batch, no runtime needed

Modules: base.py (Preprocessor, Chain), scaler.py, encoder.py, imputer.py,
concatenator.py.
"""

from .base import Chain, Preprocessor, PreprocessorNotFittedException
from .concatenator import Concatenator
from .encoder import LabelEncoder, OneHotEncoder, OrdinalEncoder
from .imputer import SimpleImputer
from .scaler import MaxAbsScaler, MinMaxScaler, StandardScaler

__all__ = ["Chain", "Concatenator", "LabelEncoder", "MaxAbsScaler", "MinMaxScaler",
           "OneHotEncoder", "OrdinalEncoder", "Preprocessor", "PreprocessorNotFittedException",
           "SimpleImputer", "StandardScaler"]
