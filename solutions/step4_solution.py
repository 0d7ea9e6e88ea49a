"""4단계: 미세조정 — NSMC 영화 리뷰로 '긍정/부정' 리뷰를 쓰는 모델 만들기

배울 것
  1. ratsnlp(책)의 학습 흐름: GenerationTrainArguments → NsmcCorpus / GenerationDataset → DataLoader
     → GenerationTask → get_trainer → trainer.fit
  2. 학습 데이터의 모양: "긍정 <리뷰></s>", "부정 <리뷰></s>" — 첫 단어가 글의 감정을 정합니다
  3. 검증 손실(val_loss)이 내려가는 모습과 체크포인트 파일 epoch=N-val_loss=X.XX.ckpt
  4. 학습 전과 후에 '긍정 아 정말' / '부정 아 정말'을 이어 쓴 글의 차이

실행 (저장소 루트에서)
  python step4_model_training.py     # 실습 파일: '# TODO 4-n' 빈칸의 todo()를 코드로 바꾼 뒤
  python solutions/step4_solution.py # 정답 파일
  kogen check step4                  # 자동 채점 (작은 가짜 데이터로 1분 안에)
  CPU: 내장 소형 모델, 리뷰 4만 개, 1 epoch — 약 7분(2코어). GPU: KoGPT2, 리뷰 15만 개, 3 epoch — 책과 같은 설정.

환경 변수 (모두 선택)
  KOGEN_MODEL           시작 모델 (기본: 빠른 설정이면 bundled, 아니면 skt/kogpt2-base-v2)
  KOGEN_NSMC_DIR        ratings_train.txt / ratings_test.txt가 있는 폴더 (없으면 처음 한 번 내려받습니다)
  KOGEN_CHECKPOINT_DIR  체크포인트를 저장할 폴더 (기본 checkpoints/step4; 5단계가 여기서 읽습니다)
  KOGEN_QUICK           1이면 빠른 설정, 0이면 전체 설정 (기본: GPU가 없으면 1)
  KOGEN_EPOCHS, KOGEN_BATCH_SIZE, KOGEN_MAX_TRAIN_EXAMPLES, KOGEN_MAX_VAL_EXAMPLES   하나씩 덮어쓰기 (0 = 전부)
"""
import functools
import os
import time

import torch
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler

import kogen
from kogen import GenerationDataset, GenerationTask, GenerationTrainArguments, NsmcCorpus, get_trainer
from kogen.exercises import todo  # noqa: F401  (실습 파일의 빈칸)
from kogen.models import load_model
from kogen.training import best_checkpoint, set_seed, training_curve

QUICK = os.environ.get("KOGEN_QUICK", "0" if torch.cuda.is_available() else "1") == "1"
MODEL_NAME = os.environ.get("KOGEN_MODEL") or ("bundled" if QUICK else "skt/kogpt2-base-v2")
CHECKPOINT_DIR = os.environ.get("KOGEN_CHECKPOINT_DIR", "checkpoints/step4")
PROMPTS = ["긍정 아 정말", "부정 아 정말"]


def env_int(name, default):
    return int(os.environ.get(name, default))


def make_args():
    """학습 설정: 빠른 설정(CPU) 또는 책의 전체 설정(GPU). 환경 변수로 하나씩 덮어쓸 수 있습니다."""
    epochs = env_int("KOGEN_EPOCHS", 1 if QUICK else 3)
    batch_size = env_int("KOGEN_BATCH_SIZE", 32)
    max_train_examples = env_int("KOGEN_MAX_TRAIN_EXAMPLES", 40_000 if QUICK else 0) or None  # None: 전부
    max_val_examples = env_int("KOGEN_MAX_VAL_EXAMPLES", 2_000 if QUICK else 0) or None
    # 작은 내장 모델은 큰 걸음(5e-4)으로 빨리 배우고, 이미 잘 배운 KoGPT2는 작은 걸음(5e-5)으로 조금만 고칩니다
    learning_rate = 5e-4 if QUICK else 5e-5
    # BEGIN SOLUTION 학습 설정을 만드세요: 위에서 정한 값과 환경 변수로.
    #   찾아볼 것: GenerationTrainArguments의 필드(kogen/training.py)
    #   시작 모델, 말뭉치 이름("nsmc")과 폴더(KOGEN_NSMC_DIR), 체크포인트 폴더, 최대 길이 32, 그리고 위에서 정한 다섯 값.
    # API: GenerationTrainArguments(pretrained_model_name=..., downstream_corpus_name=..., downstream_corpus_root_dir=...,
    # API:     downstream_model_dir=..., max_seq_length=..., epochs=..., batch_size=..., learning_rate=...,
    # API:     max_train_examples=..., max_val_examples=...)
    args = GenerationTrainArguments(
        pretrained_model_name=MODEL_NAME,
        downstream_corpus_name="nsmc",
        downstream_corpus_root_dir=os.environ.get("KOGEN_NSMC_DIR"),  # None이면 내려받아 캐시에 둡니다
        downstream_model_dir=CHECKPOINT_DIR,
        max_seq_length=32,  # 리뷰 대부분이 32토큰 안에 들어갑니다. 길수록 느립니다
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        max_train_examples=max_train_examples,
        max_val_examples=max_val_examples,
    )
    # END SOLUTION
    return args


def make_dataloaders(args, tokenizer):
    """(train_loader, val_loader): NSMC 리뷰를 "긍정 …</s>" / "부정 …</s>" 토큰 id 배치로."""
    corpus = NsmcCorpus()
    # BEGIN SOLUTION 학습용과 검증용 데이터셋을 만드세요(NSMC의 train / test 파일).
    #   찾아볼 것: GenerationDataset의 mode, max_examples
    # API: GenerationDataset(args=..., tokenizer=..., corpus=..., mode="train" 또는 "test",
    # API:     max_examples=args.max_train_examples 또는 args.max_val_examples)
    train_dataset = GenerationDataset(args=args, tokenizer=tokenizer, corpus=corpus, mode="train",
                                      max_examples=args.max_train_examples)
    val_dataset = GenerationDataset(args=args, tokenizer=tokenizer, corpus=corpus, mode="test",
                                    max_examples=args.max_val_examples)
    # END SOLUTION
    # 배치마다 가장 긴 리뷰에 맞춰 <pad>를 채우고, 손실 계산에서는 <pad> 자리를 뺍니다(labels=-100)
    collate_fn = functools.partial(kogen.data_collator, pad_token_id=tokenizer.pad_token_id)
    # BEGIN SOLUTION DataLoader 두 개를 만드세요: 학습용은 순서를 섞고 검증용은 그대로, 배치는 위의 collate_fn으로 묶습니다.
    #   찾아볼 것: DataLoader, RandomSampler, SequentialSampler
    # API: DataLoader(dataset, batch_size=..., sampler=RandomSampler(dataset) 또는 SequentialSampler(dataset),
    # API:     collate_fn=..., num_workers=args.cpu_workers)
    train_loader = DataLoader(train_dataset, batch_size=args.batch_size, sampler=RandomSampler(train_dataset),
                              collate_fn=collate_fn, num_workers=args.cpu_workers)
    val_loader = DataLoader(val_dataset, batch_size=args.batch_size, sampler=SequentialSampler(val_dataset),
                            collate_fn=collate_fn, num_workers=args.cpu_workers)
    # END SOLUTION
    return train_loader, val_loader


@torch.no_grad()
def sample(model, tokenizer, prompt, seed):
    """3단계의 추천 조합으로 한 번 이어 쓰기 (시드 고정: 학습 전후를 같은 난수로 비교)."""
    model.eval()  # 드롭아웃 끄기
    input_ids = tokenizer.encode(prompt, return_tensors="pt").to(model.device)
    torch.manual_seed(seed)
    output_ids = model.generate(input_ids, do_sample=True, top_k=50, top_p=0.92, temperature=0.9,
                                repetition_penalty=1.5, no_repeat_ngram_size=3, max_new_tokens=30)
    return tokenizer.decode(output_ids[0], skip_special_tokens=True)


def show_samples(model, tokenizer, title):
    print(f"\n== {title} ==")
    for prompt in PROMPTS:
        for seed in (0, 1):
            print(f"{prompt!r} → {sample(model, tokenizer, prompt, seed)}")


def main():
    args = make_args()
    set_seed(args.seed)  # 데이터 섞는 순서와 드롭아웃까지 재현되게
    print("== 1. 학습 설정 ==" + ("  (빠른 설정: 2코어 CPU에서 약 7분)" if QUICK else "  (전체 설정: 책과 같음)"))
    for name in ("pretrained_model_name", "downstream_corpus_root_dir", "downstream_model_dir", "max_seq_length",
                 "epochs", "batch_size", "learning_rate", "max_train_examples", "max_val_examples"):
        print(f"  {name:<28} {getattr(args, name)}")

    # 1단계의 from_pretrained 두 줄. 장치는 학습할 때 Lightning이 GPU로 옮겨 줍니다
    model, tokenizer, _ = load_model(args.pretrained_model_name, "cpu")
    train_loader, val_loader = make_dataloaders(args, tokenizer)
    example = train_loader.dataset[0]["input_ids"]
    print(f"\n== 2. 데이터 ==\n  학습 {len(train_loader.dataset):,}개({len(train_loader):,}배치), "
          f"검증 {len(val_loader.dataset):,}개\n  첫 예제: {tokenizer.decode(example)!r}\n  토큰 id: {example}")

    show_samples(model, tokenizer, "3. 학습 전: 감정 단어를 아직 모릅니다")

    task = GenerationTask(model, args)
    trainer = get_trainer(args)
    val_before = trainer.validate(task, val_loader, verbose=False)[0]["val_loss"]
    t = time.perf_counter()
    # BEGIN SOLUTION 학습하세요: task를 학습용 DataLoader로 배우고 검증용으로 잽니다.
    #   찾아볼 것: Lightning의 trainer.fit
    # API: trainer.fit(task, train_dataloaders=..., val_dataloaders=...)
    trainer.fit(task, train_dataloaders=train_loader, val_dataloaders=val_loader)
    # END SOLUTION
    seconds = time.perf_counter() - t
    val_after = trainer.callback_metrics["val_loss"].item()

    took = f"{seconds / 60:.1f}분" if seconds >= 60 else f"{seconds:.0f}초"
    print(f"\n== 4. 학습 결과 ({took}, {trainer.global_step:,}스텝) ==")
    print(f"  val_loss   {val_before:.3f} → {val_after:.3f}")
    print(f"  perplexity {torch.exp(torch.tensor(val_before)):.1f} → {torch.exp(torch.tensor(val_after)):.1f}"
          "   (다음 토큰 후보를 평균 몇 개 중에서 망설이는가)")
    print(f"  체크포인트 {best_checkpoint(args.downstream_model_dir)}")
    # Lightning이 스텝마다 적은 metrics.csv를 그림으로: 손실이 어떻게 내려갔는지, 학습률이 어떻게 바뀌었는지
    print(f"  학습 곡선 {training_curve(trainer)}   (train/val loss, val perplexity, learning rate)")

    show_samples(model, tokenizer, "5. 학습 후: 첫 단어(긍정/부정)에 맞는 리뷰를 씁니다")
    print(f"\n다음: python step5_web_service.py 가 {args.downstream_model_dir}의 체크포인트를 웹으로 서비스합니다.")


if __name__ == "__main__":
    main()
