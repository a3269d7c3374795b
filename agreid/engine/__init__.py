"""Training engine: loop and hooks, the default trainer, set-up, and the distributed launcher."""
from agreid.engine.argparser import default_argument_parser
from agreid.engine.launch import launch
from agreid.engine.setup import default_setup, prepare_output_dir, setup_cfg
from agreid.engine.train_loop import HookBase, SimpleTrainer, TrainerBase
from agreid.engine.trainer import DefaultTrainer

__all__ = ["default_argument_parser", "launch", "default_setup", "prepare_output_dir", "setup_cfg", "HookBase",
           "SimpleTrainer", "TrainerBase", "DefaultTrainer"]
