"""One module per CLI verb's core function (check, new step, export, reproduce,
monitor). The CLI parses; these do the work.
"""
