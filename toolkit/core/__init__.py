"""Foundations every layer may use: errors and exit codes, settings, atomic files,
the run lock, secrets, data files and lineage facts. Imports nothing above it.
"""
