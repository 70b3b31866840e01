"""Pipeline specs: the pydantic models (pipeline and step level), bounded YAML loading with
errors naming file and field, the JSON Schema, and the parameters cell of a notebook read
without a kernel.
"""
