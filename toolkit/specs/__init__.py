"""Pipeline specs: the pydantic models, bounded YAML loading, and the parameters cell
of a notebook read without a kernel.
"""
