"""Evaluation: distances, gallery-removal rules, CMC/mAP/mINP ranking, evaluators and result tables."""
from agreid.evaluation import rules  # noqa: F401  (registers the gallery-removal rules)
from agreid.evaluation.distance import compute_distance
from agreid.evaluation.evaluator import DatasetEvaluator, inference_context, inference_on_dataset
from agreid.evaluation.features import FeatureCollector
from agreid.evaluation.query_expansion import average_query_expansion
from agreid.evaluation.rank import evaluate_ranking
from agreid.evaluation.rerank import re_ranking
from agreid.evaluation.reid_evaluator import ReidEvaluator, unique_records
from agreid.evaluation.roc import tpr_at_fpr
from agreid.evaluation.scoring import ScoringOptions, evaluate_features, evaluate_protocol, score_features
from agreid.evaluation.results_table import format_results_table, results_markdown, save_results

__all__ = ["evaluate_ranking", "compute_distance", "DatasetEvaluator", "inference_context",
           "inference_on_dataset", "ReidEvaluator", "evaluate_features", "format_results_table",
           "results_markdown", "save_results", "unique_records", "tpr_at_fpr", "ScoringOptions",
           "evaluate_protocol", "score_features", "FeatureCollector", "re_ranking",
           "average_query_expansion"]
