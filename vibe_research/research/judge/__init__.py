"""Story-quality judges: the heuristic one (the offline default) and the LLM one, behind one
small interface (`scoring.Judge`), with a cache of their answers (`cache.JudgeCache`)."""
