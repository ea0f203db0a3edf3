from .json_io import JsonReader, JsonWriter

__all__ = ["JsonReader", "JsonWriter"]
