"""Evaluation: the mean reward of weights on rows, a population's members over ranks, and the two ways of scoring
a member faster (several members in one batched call, an exact-answer teacher-forced pass)."""
