"""Answers from passages: prompt assembly and the generation backends."""
