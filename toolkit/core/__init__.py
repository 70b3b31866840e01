"""Foundations every layer may use: errors and exit codes, settings, atomic files,
the run lock, secrets, data files, git, plain JSON data and lineage facts. Imports nothing above it.
"""
