"""The default configuration tree. Every key a config file or command line may set is declared here."""
from yacs.config import CfgNode as CN

_C = CN()

_C.OUTPUT_DIR = "output"
_C.SEED = 0  # >= 0: deterministic (SEED + rank per process); < 0: random seed, logged
_C.CUDNN_BENCHMARK = False

# ---------------------------------------------------------------------------- model
_C.MODEL = CN()
_C.MODEL.META_ARCHITECTURE = "Baseline"
_C.MODEL.DEVICE = "auto"  # "auto" (cuda if available), "cpu", "cuda"
_C.MODEL.WEIGHTS = ""  # agreid or reference-code checkpoint to start from (or evaluate with --eval-only)
_C.MODEL.ALLOW_PARTIAL_WEIGHTS = False  # True: MODEL.WEIGHTS may miss model tensors (they keep their init)
_C.MODEL.PRETRAIN_PATH = ""  # local file of backbone weights (ImageNet / CLIP); never downloaded
_C.MODEL.NUM_CAMERAS = 0  # cameras seen in training (SIE); 0: set from the training data
_C.MODEL.NUM_VIEWS = 0  # view codes seen in training (SIE); 0: set from the training data
_C.MODEL.ATTRIBUTE_NAMES = []  # attributes labelled in the batches (SVPR's ASMoE heads), in order; empty: the
# training set's when its batches carry attribute_labels (else attribute_<i> for given ATTRIBUTE_CLASSES)
_C.MODEL.ATTRIBUTE_CLASSES = []  # class count per attribute; empty: the training set's (none: attribute heads off)

_C.MODEL.BACKBONE = CN()
_C.MODEL.BACKBONE.NAME = "resnet50"  # resnet18, resnet50, vit
_C.MODEL.BACKBONE.LAST_STRIDE = 1
_C.MODEL.BACKBONE.VIT = CN()
_C.MODEL.BACKBONE.VIT.PATCH_SIZE = 16
_C.MODEL.BACKBONE.VIT.STRIDE_SIZE = 16  # < PATCH_SIZE gives overlapping patches (TransReID)
_C.MODEL.BACKBONE.VIT.EMBED_DIM = 768
_C.MODEL.BACKBONE.VIT.DEPTH = 12
_C.MODEL.BACKBONE.VIT.NUM_HEADS = 12
_C.MODEL.BACKBONE.VIT.MLP_RATIO = 4.0
_C.MODEL.BACKBONE.VIT.DROP_PATH = 0.1
_C.MODEL.BACKBONE.VIT.DROP_RATE = 0.0
_C.MODEL.BACKBONE.VIT.ATTN_DROP_RATE = 0.0
_C.MODEL.SIE = CN()  # TransReID side-information embedding, added to every token (MODEL.BACKBONE.NAME vit_transreid)
_C.MODEL.SIE.CAMERA = False  # one embedding per camera (MODEL.NUM_CAMERAS)
_C.MODEL.SIE.VIEW = False  # one per view code (MODEL.NUM_VIEWS); with CAMERA: one per (camera, view) pair
_C.MODEL.SIE.COE = 3.0  # lambda multiplying the embedding
_C.MODEL.TRANSREID = CN()  # META_ARCHITECTURE TransReID
_C.MODEL.TRANSREID.JPM = False  # jigsaw patch module: global + DEVIDE_LENGTH local branches
_C.MODEL.TRANSREID.SHIFT_NUM = 5  # patch tokens are rotated left by SHIFT_NUM - 1
_C.MODEL.TRANSREID.SHUFFLE_GROUP = 2  # patch shuffle groups
_C.MODEL.TRANSREID.DEVIDE_LENGTH = 4  # local branches (reference spelling)
_C.MODEL.TRANSREID.RE_ARRANGE = True  # shift + shuffle before splitting into groups

_C.MODEL.SECAP = CN()  # VDT and SeCap (META_ARCHITECTURE "VDT" / "SeCap"; backbone vit_multiview[_secap])
_C.MODEL.SECAP.INNER_SUB = True  # class token <- class - view token after the encoder blocks
_C.MODEL.SECAP.VIEW_ID = True  # view-classification loss (2 classes: aerial 1, other 0)
_C.MODEL.SECAP.VIEW_OREG = True  # orthogonality loss mean|cos(g - v, v)|
_C.MODEL.SECAP.VIEW_LAMBDA = 0.001  # weight of both view losses
_C.MODEL.SECAP.HEADS_TWICE = True  # reference quirk: identity head also run on g (BN stats updated twice)
_C.MODEL.SECAP.PROMPT_LEN = 64  # SeCap: learnable prompts
_C.MODEL.SECAP.PROMPT_DEPTH = 2  # SeCap: two-way decoder layers
_C.MODEL.SECAP.USE_PRM = True  # SeCap: re-calibrate the prompts on g - v
_C.MODEL.SECAP.ATTN_DOWNSAMPLE = 2  # SeCap: decoder attention width = EMBED_DIM / this

# META_ARCHITECTURE CLIPReID / MSP (agreid/modeling/meta_arch/clipreid.py, msp.py). The towers come from the
# OpenAI CLIP file MODEL.PRETRAIN_PATH (its own architecture); without it, random weights of MODEL.CLIP.NAME
# with the dim overrides below (0 / []: the NAME's). SIE: MODEL.SIE.CAMERA / VIEW / COE with MODEL.NUM_CAMERAS /
# NUM_VIEWS, added to the CLS token only (ViT). Stage 1 (prompts) uses SOLVER.STAGE1, stage 2 SOLVER.
_C.MODEL.CLIP = CN()
_C.MODEL.CLIP.NAME = "ViT-B-16"  # ViT-B-16 or RN50 (the reference MODEL.NAME)
_C.MODEL.CLIP.STRIDE_SIZE = 16  # ViT patch stride: 16 (16x8 grid at 256x128) or 12 (overlapping, 21x10)
_C.MODEL.CLIP.PROMPT = "A photo of a X X X X person."  # stage-1 template; the X run = learnable tokens
_C.MODEL.CLIP.ID_LOSS_WEIGHT = 0.25  # stage 2: ID (label-smoothed CE, MODEL.LOSSES.CE) on both classifiers
_C.MODEL.CLIP.TRIPLET_LOSS_WEIGHT = 1.0  # stage 2: triplet (MODEL.LOSSES.TRI) on the three features
_C.MODEL.CLIP.I2T_LOSS_WEIGHT = 1.0  # stage 2: CE of projected image feature @ identity text features
_C.MODEL.CLIP.EMBED_DIM = 0  # random build only: joint image-text width (512 ViT-B-16, 1024 RN50)
_C.MODEL.CLIP.VISION_LAYERS = []  # random build only: ViT depth [12] or ResNet stages [3, 4, 6, 3]
_C.MODEL.CLIP.VISION_WIDTH = 0  # random build only: ViT width 768 / ResNet stem width 64
_C.MODEL.CLIP.VISION_PATCH_SIZE = 0  # random build only: ViT patch (kernel) size 16
_C.MODEL.CLIP.VISION_GRID = 0  # random build only: pretrained grid side (14 ViT, 7 RN50), resized to the input
_C.MODEL.CLIP.TEXT_WIDTH = 0  # random build only: text transformer width 512 (heads = width / 64)
_C.MODEL.CLIP.TEXT_LAYERS = 0  # random build only: text transformer depth 12
_C.MODEL.MSP = CN()  # META_ARCHITECTURE MSP: per-view prompt stages, then CLIP-ReID's stage 2 + view losses
_C.MODEL.MSP.SKY_PROMPT = "A sky photo of a X X X X person."  # stage "prompt_sky" (aerial images)
_C.MODEL.MSP.GROUND_PROMPT = "A ground photo of a X X X X person."  # stage "prompt_ground"
_C.MODEL.MSP.AIR_LOSS_WEIGHT = 1.0  # CE of projected feature @ ground-prompt textsᵀ ("air" loss)
_C.MODEL.MSP.GROUND_LOSS_WEIGHT = 0.1  # CE of projected feature @ sky-prompt textsᵀ over ground images
_C.MODEL.MSP.MASK_AIR_LOSS = False  # True: the air loss over aerial images only (the reference uses all: bug)
_C.MODEL.MSP.ALIGN_BY_PID = False  # True: per-view prompts indexed by the joint ids (same raw pid); False:
# the reference's per-view relabelling, which only lines up when every identity has both views (else an error)

# META_ARCHITECTURE SVPR (SVPR-ReID; agreid/modeling/meta_arch/svpr.py): CLIP ViT from MODEL.PRETRAIN_PATH /
# MODEL.CLIP.* (NAME, STRIDE_SIZE, random-build dims); batches need DATASETS.OPTIONS '["captions=svpr"]'.
_C.MODEL.SVPR = CN()  # attributes: MODEL.ATTRIBUTE_NAMES / ATTRIBUTE_CLASSES
_C.MODEL.SVPR.TEXT_LENGTH = 100  # text context (CLIP's 77 position rows interpolated); = the data's caption_length
_C.MODEL.SVPR.TEXT_PROMPTS = 4  # learnable vectors added at the caption's X positions
_C.MODEL.SVPR.VIEW_PROMPTS = 4  # learnable vectors replacing the view template's X positions
_C.MODEL.SVPR.VIEW_CLASSES = 3  # view head classes (the reference's 3)
_C.MODEL.SVPR.VIEW_WORD_INDEX = []  # view label -> word row (0 ground, 1 aerial, 2 end-of-text); []: the label
# itself (reference: AG-ReID.v2's UAV label 2 gets the end-of-text embedding); [0, 1, 1] gives UAV "aerial"
_C.MODEL.SVPR.FREEZE_TEXT = True  # text tower frozen (reference FREEZE_TEXT)
_C.MODEL.SVPR.PROMPT_DROPOUT = 0.1  # dropout of the text / view prompt MLPs (inverseNet_T2I / P2I)
_C.MODEL.SVPR.NUM_EXPERTS = 4  # ASMoE experts
_C.MODEL.SVPR.EXPERT_TOPK = 3  # experts mixed per attribute
_C.MODEL.SVPR.ATTRIBUTE_TOPK = 0.7  # fraction of attributes mixed into the attribute feature
_C.MODEL.SVPR.CVPR_STAGES = 3  # CVPR rounds (one shared block)
_C.MODEL.SVPR.CVPR_TOPK = 0.5  # fraction of candidate patches kept per round
_C.MODEL.SVPR.CVPR_RESIDUAL = 0.1  # patches + this x CVPR's patches before the local branch
_C.MODEL.SVPR.CVPR_RESIDUAL_ALL = True  # reference: the residual adds every patch (unselected ones x 1.1)
_C.MODEL.SVPR.CVPR_BATCH_CONTEXT = True  # reference bug: CVPR's context mixes the batch's attribute features
_C.MODEL.SVPR.CVPR_SCATTER_BY_SCORE = True  # reference bug: refined patches written to other selected positions
_C.MODEL.SVPR.LOCAL_PATCHES = 128  # local weight rows (reference: 128, 256x128 at stride 16); 0: the grid's
_C.MODEL.SVPR.ID_LOSS_WEIGHT = 0.25  # CE(cls) + mean(CE(cvpr), CE(local)); smoothing MODEL.LOSSES.CE.EPSILON
_C.MODEL.SVPR.TRIPLET_LOSS_WEIGHT = 1.0  # Tri(cls) + mean over cvpr, local, x11 CLS; MODEL.LOSSES.TRI
_C.MODEL.SVPR.VIEW_LOSS_WEIGHT = 1.0  # smoothed view CE + mean|cos(cls, view feature)|
_C.MODEL.SVPR.VIEW_SMOOTHING_OVER_IDS = True  # reference: the view CE smooths with epsilon / identities
_C.MODEL.SVPR.ATTR_LOSS_WEIGHT = 0.05  # sum of the attribute CEs

_C.MODEL.AGW = CN()  # META_ARCHITECTURE AGW (backbone resnet50_nl); see agreid/modeling/meta_arch/agw.py
_C.MODEL.AGW.TWO_STREAM = False  # one stem per modality (visible, infrared) before a shared trunk (VI AGW)
_C.MODEL.AGW.STEM_RELU = True  # ReID-Survey's resnet50_nl stem has no ReLU: False
_C.MODEL.AGW.NON_LOCAL = [0, 2, 3, 0]  # non-local blocks after the last n blocks of layer1..layer4
_C.MODEL.AGW.NL_REDUCTION = 0  # 0: one inner channel (both references' quirk); r > 0: C // r (the paper: 2)
_C.MODEL.AGW.BASE_WIDTH = 64  # planes of layer1, doubled per stage (64 = ResNet-50; smaller for tests)
_C.MODEL.AGW.NECK_WEIGHT_STD = 0.0  # BNNeck weight ~ N(1, std): the cross-modal reference uses 0.01
_C.MODEL.AGW.TEST_FEATURES = ["pool", "bn"]  # evaluated: pool (pre-BN) and/or bn (post-BN), one table each
_C.MODEL.AGW.NORMALIZE_TEST_FEATURES = True  # L2-normalise them in the model (the cross-modal reference)

# META_ARCHITECTURE TFCLIP: TF-CLIP and the X-TFCLIP extras; see agreid/modeling/meta_arch/tfclip.py. The frame
# encoder is the ViT of MODEL.PRETRAIN_PATH (OpenAI CLIP; random MODEL.CLIP.* dims without it) at INPUT.SIZE_TRAIN
# with stride MODEL.CLIP.STRIDE_SIZE; SIE is MODEL.SIE (CLS token only); clips are INPUT.SEQ_LEN frames.
_C.MODEL.TFCLIP = CN()
_C.MODEL.TFCLIP.POS_RESIZE = "bilinear"  # position-grid resize: bilinear (TF-CLIP) or bicubic (X-TFCLIP)
_C.MODEL.TFCLIP.VIDEO_EMBED = False  # X-TFCLIP: learnable per-frame embedding added to each frame's CLS
_C.MODEL.TFCLIP.ATTENTION_POOL = False  # X-TFCLIP: attention pooling instead of each of the five means
_C.MODEL.TFCLIP.MEMORY_UPDATE = "add"  # add: M + SSP(M, v); learned (X-TFCLIP): s(a) M + (1 - s(a)) SSP(M, v)
_C.MODEL.TFCLIP.NECK = "bn"  # bn (BatchNorm1d, frozen bias) or instance (X-TFCLIP: per-sample standardisation)
_C.MODEL.TFCLIP.ID_LOSS = "ls"  # ls: CE with MODEL.LOSSES.CE.EPSILON; ols (X-TFCLIP): online label smoothing
_C.MODEL.TFCLIP.OLS_ALPHA = 0.5  # ols: weight of the hard CE (1 - alpha on the soft targets)
_C.MODEL.TFCLIP.OLS_SMOOTHING = 0.1  # ols: label smoothing of the first epoch's soft targets
_C.MODEL.TFCLIP.ID_LOSS_WEIGHT = 0.25
_C.MODEL.TFCLIP.TRI_LOSS_WEIGHT = 1.0  # margin: MODEL.LOSSES.TRI.MARGIN
_C.MODEL.TFCLIP.MEMORY_LOSS_WEIGHT = 1.0  # video-to-memory logits (the reference's I2T_LOSS_WEIGHT)
_C.MODEL.TFCLIP.FRAME_LOSS_WEIGHT = 1.0  # per-frame TMD loss, divided by SEQ_LEN as in the reference
_C.MODEL.TFCLIP.SSP_LAYERS = 2
_C.MODEL.TFCLIP.SSP_DROPOUT = 0.1
_C.MODEL.TFCLIP.TMD_LAYERS = 1
_C.MODEL.TFCLIP.TMD_HEADS = 12
_C.MODEL.TFCLIP.LARGE_FC_LR = 10.0  # LR factor of the TMD classifier (reference LARGE_FC_LR); 1 turns it off
_C.MODEL.TFCLIP.GRAD_CENTRALIZATION = False  # X-TFCLIP: centre the gradients of every >1-D parameter
_C.MODEL.TFCLIP.FLIP_TEST = False  # X-TFCLIP: test feature = mean of the clip's and its mirror's
# K x 512 CLIP-Memory to use instead of building it; empty: clip_memory.pt beside MODEL.WEIGHTS if it exists
_C.MODEL.TFCLIP.MEMORY_FILE = ""

_C.MODEL.HEADS = CN()
_C.MODEL.HEADS.NAME = "BNNeckHead"
_C.MODEL.HEADS.POOL = "avg"  # avg, gem (fixed GEM_P), gem_learn (learnable p), gem_add_eps, max, token (ViT)
_C.MODEL.HEADS.GEM_P = 3.0
_C.MODEL.HEADS.NECK_FEAT = "after"  # test feature: "before" or "after" the BNNeck
_C.MODEL.HEADS.NUM_CLASSES = 0  # 0: set from the training data
_C.MODEL.HEADS.CLS_BIAS = False

_C.MODEL.LOSSES = CN()
_C.MODEL.LOSSES.NAMES = ("CrossEntropyLoss", "TripletLoss")
_C.MODEL.LOSSES.CE = CN()
_C.MODEL.LOSSES.CE.EPSILON = 0.1  # label smoothing
_C.MODEL.LOSSES.CE.SCALE = 1.0
_C.MODEL.LOSSES.TRI = CN()
_C.MODEL.LOSSES.TRI.MARGIN = 0.3  # <= 0: soft margin
_C.MODEL.LOSSES.TRI.HARD_MINING = True
_C.MODEL.LOSSES.TRI.NORM_FEAT = False
_C.MODEL.LOSSES.TRI.SCALE = 1.0
_C.MODEL.LOSSES.SUPCON = CN()  # SupConLoss (CLIP-ReID stage 1, image <-> text)
_C.MODEL.LOSSES.SUPCON.TEMPERATURE = 1.0  # the reference: 1 (on unnormalised features)
_C.MODEL.LOSSES.WRT = CN()  # WeightedRegularizedTriplet (AGW)
_C.MODEL.LOSSES.WRT.EXACT_SOFTMAX = False  # False: the references' weights (see losses/weighted_triplet.py)
_C.MODEL.LOSSES.WRT.NORM_FEAT = False
_C.MODEL.LOSSES.WRT.SCALE = 1.0
_C.MODEL.LOSSES.CENTER = CN()  # CenterLoss (single-modality AGW); centres stepped by SGD at SOLVER.CENTER_LR
_C.MODEL.LOSSES.CENTER.WEIGHT = 5e-4
_C.MODEL.LOSSES.CENTER.FEAT_DIM = 2048  # width of the features it reads (features_before)

# ---------------------------------------------------------------------------- input
_C.INPUT = CN()
_C.INPUT.SIZE_TRAIN = [256, 128]  # (height, width)
_C.INPUT.SIZE_TEST = [256, 128]
_C.INPUT.INTERPOLATION_TRAIN = "bilinear"  # training resize: bilinear or bicubic (SVPR-ReID); tests: bilinear
_C.INPUT.NORM = "imagenet"  # imagenet, clip or half (mean = std = 0.5) statistics
_C.INPUT.DECODER = "opencv"  # opencv or pil
_C.INPUT.SEQ_LEN = 8  # frames per clip for video (tracklet) datasets
_C.INPUT.SAMPLE_METHOD_TRAIN = "rrs_train"  # rrs_train, evenly, random
_C.INPUT.SAMPLE_METHOD_TEST = "rrs_test"  # rrs_test, evenly, all
_C.INPUT.FLIP = CN()
_C.INPUT.FLIP.ENABLED = True
_C.INPUT.FLIP.PROB = 0.5
_C.INPUT.PADDING = CN()
_C.INPUT.PADDING.ENABLED = True
_C.INPUT.PADDING.SIZE = 10
_C.INPUT.REA = CN()  # random erasing
_C.INPUT.REA.ENABLED = True
_C.INPUT.REA.PROB = 0.5
_C.INPUT.REA.FILL = "mean"  # mean (zeros after normalisation, fast-reid) or random (per-pixel normal: timm's
# mode "pixel", SVPR-ReID)
_C.INPUT.CJ = CN()  # colour jitter
_C.INPUT.CJ.ENABLED = False
_C.INPUT.CJ.PROB = 0.5
_C.INPUT.CJ.BRIGHTNESS = 0.15
_C.INPUT.CJ.CONTRAST = 0.15
_C.INPUT.CJ.SATURATION = 0.1
_C.INPUT.CJ.HUE = 0.1

# ---------------------------------------------------------------------------- datasets
_C.DATASETS = CN()
_C.DATASETS.ROOT_DIR = "datasets"  # the AGREID_DATASETS environment variable overrides an unset root
_C.DATASETS.NAMES = ("AGDemo",)  # training sets
_C.DATASETS.TESTS = ("AGDemo",)  # "NAME" (every protocol) or "NAME/PROTOCOL"
_C.DATASETS.OPTIONS = []  # adapter options as "KEY=VALUE" strings, e.g. ["trial=3"]

# ---------------------------------------------------------------------------- data loading
_C.DATALOADER = CN()
_C.DATALOADER.SAMPLER_TRAIN = "IdentitySampler"  # IdentitySampler, ViewBalancedIdentitySampler, RandomSampler
_C.DATALOADER.NUM_INSTANCE = 4  # K images per identity in a P x K batch
_C.DATALOADER.NUM_WORKERS = 4

# ---------------------------------------------------------------------------- solver
_C.SOLVER = CN()
_C.SOLVER.OPT = "Adam"  # Adam, AdamW, SGD
_C.SOLVER.BASE_LR = 3.5e-4
_C.SOLVER.BIAS_LR_FACTOR = 1.0
_C.SOLVER.BIAS_RULE = "leaf"  # a bias is a parameter named "bias" (fast-reid); "substring": "bias" anywhere in
# its name, as TransReID / CLIP-ReID / TF-CLIP (also attention in_proj_bias)
_C.SOLVER.HEADS_LR_FACTOR = 1.0
_C.SOLVER.WEIGHT_DECAY = 5e-4
_C.SOLVER.WEIGHT_DECAY_BIAS = 5e-4
# weight decay of normalisation-layer weights (BN/LN/GN/IN; their biases take WEIGHT_DECAY_BIAS);
# negative: WEIGHT_DECAY (TransReID); fast-reid/SeCap/VDT use 5e-4
_C.SOLVER.WEIGHT_DECAY_NORM = -1.0
_C.SOLVER.MOMENTUM = 0.9
_C.SOLVER.NESTEROV = False
_C.SOLVER.IMS_PER_BATCH = 64  # global batch over all processes
_C.SOLVER.MAX_EPOCH = 120
_C.SOLVER.ITERS_PER_EPOCH = 0  # 0: len(train) // IMS_PER_BATCH
# MultiStepLR, CosineAnnealingLR (per iteration), WarmupCosineEpochLR (fast-reid: warmup per
# iteration, cosine per epoch), TimmCosineLR (TransReID: timm cosine per epoch), WarmupMultiStepEpochLR
# (warmup and steps per epoch: AGW, CLIP-ReID stage 2, TF-CLIP, SVPR); see agreid/solver
_C.SOLVER.SCHED = "MultiStepLR"
_C.SOLVER.STEPS = [40, 90]  # epochs
_C.SOLVER.GAMMA = 0.1
_C.SOLVER.ETA_MIN_LR = 1e-7
_C.SOLVER.WARMUP_ITERS = 0
_C.SOLVER.WARMUP_FACTOR = 0.1  # TimmCosineLR: warmup starts at WARMUP_FACTOR x BASE_LR
_C.SOLVER.WARMUP_METHOD = "linear"  # linear, constant or exp
_C.SOLVER.WARMUP_EPOCHS = 0  # TimmCosineLR and WarmupMultiStepEpochLR (warmup per epoch; keep WARMUP_ITERS 0)
# WarmupMultiStepEpochLR: agreid epoch e runs the schedule's epoch e + this; 1 reproduces references that
# step their epoch scheduler before each epoch (ReID-Survey, CLIP-ReID stage 2, SVPR); 0 those stepping it after
# (TF-CLIP) or computing the LR from the epoch (the cross-modal AGW)
_C.SOLVER.SCHED_EPOCH_OFFSET = 0
_C.SOLVER.CENTER_LR = 0.5  # plain SGD of the CenterLoss centres (constant, outside the schedule)
_C.SOLVER.CHECKPOINT_PERIOD = 10  # epochs
_C.SOLVER.LOG_PERIOD = 20  # iterations
_C.SOLVER.AMP = CN()
_C.SOLVER.AMP.ENABLED = False  # ignored on CPU
_C.SOLVER.AMP.DTYPE = "fp16"  # fp16 or bf16
# A method trained in stages (agreid/modeling/stages.py) reads a stage's solver from SOLVER with the keys of
# its node replaced: CLIP-ReID's / MSP's prompt-learning stage uses SOLVER.STAGE1 (defaults: CLIP-ReID's
# configs/person/vit_clipreid.yml STAGE1: Adam 3.5e-4, wd 1e-4, 120 epochs, batch 64, timm cosine to 1e-6
# after 5 warmup epochs from 1e-5 = WARMUP_FACTOR x BASE_LR).
_C.SOLVER.STAGE1 = CN()
_C.SOLVER.STAGE1.OPT = "Adam"
_C.SOLVER.STAGE1.BASE_LR = 3.5e-4
_C.SOLVER.STAGE1.MOMENTUM = 0.9
_C.SOLVER.STAGE1.WEIGHT_DECAY = 1e-4
_C.SOLVER.STAGE1.WEIGHT_DECAY_BIAS = 1e-4
_C.SOLVER.STAGE1.BIAS_LR_FACTOR = 1.0
_C.SOLVER.STAGE1.IMS_PER_BATCH = 64
_C.SOLVER.STAGE1.MAX_EPOCH = 120
_C.SOLVER.STAGE1.SCHED = "TimmCosineLR"
_C.SOLVER.STAGE1.STEPS = [40, 90]
_C.SOLVER.STAGE1.ETA_MIN_LR = 1e-6
_C.SOLVER.STAGE1.WARMUP_ITERS = 0
_C.SOLVER.STAGE1.WARMUP_EPOCHS = 5
_C.SOLVER.STAGE1.WARMUP_FACTOR = 1e-5 / 3.5e-4
_C.SOLVER.STAGE1.WARMUP_METHOD = "linear"
_C.SOLVER.STAGE1.CHECKPOINT_PERIOD = 120
_C.SOLVER.STAGE1.LOG_PERIOD = 50
_C.SOLVER.CLIP_GRADIENTS = CN()
_C.SOLVER.CLIP_GRADIENTS.ENABLED = False
# norm: one norm over all parameters; norm_per_param: each parameter on its own (fast-reid's code);
# norm_per_group: each optimizer group on its own (fast-reid + ContiguousParams, as SeCap/VDT ran);
# value: clip_grad_value_ at MAX_NORM
_C.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "norm"
_C.SOLVER.CLIP_GRADIENTS.MAX_NORM = 5.0
_C.SOLVER.CLIP_GRADIENTS.NORM_TYPE = 2.0

# ---------------------------------------------------------------------------- test
_C.TEST = CN()
_C.TEST.EVALUATOR = "ReidEvaluator"
_C.TEST.EVAL_PERIOD = 20  # epochs; 0 disables periodic evaluation
_C.TEST.IMS_PER_BATCH = 128
_C.TEST.METRIC = "cosine"  # cosine or euclidean
_C.TEST.FEAT_NORM = False  # L2-normalise features before a euclidean distance
_C.TEST.FLIP = False  # average features of the image and its mirror
_C.TEST.MAX_RANK = 50
_C.TEST.BEST_METRIC = "metric"  # key compared for model_best: metric = (mAP + R1) / 2; "Rank-1@bn": feature bn's
_C.TEST.ROC = False  # also report TPR at FPR 1e-4, 1e-3, 1e-2
_C.TEST.RERANK = CN()  # k-reciprocal re-ranking (Zhong et al., CVPR 2017)
_C.TEST.RERANK.ENABLED = False
_C.TEST.RERANK.K1 = 20
_C.TEST.RERANK.K2 = 6
_C.TEST.RERANK.LAMBDA = 0.3
_C.TEST.RERANK.MAX_ITEMS = 40000  # refuse larger query + gallery sets: memory grows with (Q+G)^2
_C.TEST.AQE = CN()  # average query expansion
_C.TEST.AQE.ENABLED = False
_C.TEST.AQE.QE_TIME = 1
_C.TEST.AQE.QE_K = 5
_C.TEST.AQE.ALPHA = 3.0
# X-TFCLIP's soft-biometric distance masking: USES GROUND-TRUTH ATTRIBUTES OF THE TEST IDENTITIES (AG-VPReID
# attribute CSVs); off by default, logged and marked "[GT attributes]" in the results table when on.
# See agreid/evaluation/soft_biometrics.py.
_C.TEST.SOFT_BIOMETRICS = CN()
_C.TEST.SOFT_BIOMETRICS.ENABLED = False
_C.TEST.SOFT_BIOMETRICS.COLUMNS = [0, 1, 4, 3]  # attribute columns compared: gender, age, ethnicity, body volume
_C.TEST.SOFT_BIOMETRICS.UNKNOWN = [2, 8, 4, 3]  # each column's "unknown" code (never penalised)
_C.TEST.SOFT_BIOMETRICS.PENALTY = 100.0  # added to the distance per known, differing attribute
