using System.Globalization;
using Disagg.Train.Model;
using Disagg.Train.Training;

namespace Disagg.Train;

/// <summary>Command-line options of the trainer; the defaults train the bundled demo model.</summary>
internal sealed class TrainOptions
{
    public const string Usage = """
        Disagg.Train: trains the bundled demo model (a small Llama) on the King James Bible and writes a Hugging Face
        model directory (config.json, model.safetensors, tokenizer files, README.md, eval.json, heldout.txt).

          --corpus FILE        the corpus from prepare_corpus.sh (book, chapter, verse, text; tab-separated)   [required]
          --out DIR            the model directory to write                                                [required]
          --device D           cuda (default) or cpu
          --steps N            optimiser steps (default 320)
          --batch N            sequences per step (default 32)
          --context N          tokens per training sequence, and the model's max_position_embeddings (default 1024)
          --eval-context N     window of the held-out perplexity (default 256)
          --eval-every N       steps between held-out evaluations (default 40)
          --lr X               peak learning rate (default 0.0015)
          --warmup N           warm-up steps (default 40)
          --vocab N            tokenizer vocabulary, special tokens included (default 4096)
          --hidden N           hidden size (default 384)
          --layers N           decoder layers (default 6)
          --heads N            query heads (default 6)
          --kv-heads N         key/value heads (default 2)
          --intermediate N     MLP width (default 1024)
          --chat-fraction X    share of verses that also make a chat example (default 0.5)
          --seed N             seed of the data order, initialisation and batches (default 1234)
        """;

    public string Corpus { get; private set; } = "";
    public string Output { get; private set; } = "";
    public string Device { get; private set; } = "cuda";
    public int Vocab { get; private set; } = 4096;
    public int Hidden { get; private set; } = 384;
    public int Layers { get; private set; } = 6;
    public int Heads { get; private set; } = 6;
    public int KeyValueHeads { get; private set; } = 2;
    public int Intermediate { get; private set; } = 1024;
    public double ChatFraction { get; private set; } = 0.5;
    public TrainSettings Settings { get; private set; } = new();
    public bool Help { get; private set; }

    public ModelShape Shape => new(Vocab, Hidden, Layers, Heads, KeyValueHeads, Intermediate, Settings.Context);

    /// <exception cref="ArgumentException">An unknown flag, a missing value or a value out of range.</exception>
    public static TrainOptions Parse(string[] args)
    {
        var o = new TrainOptions();
        var s = o.Settings;
        for (int i = 0; i < args.Length; i++)
        {
            string flag = args[i];
            string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{flag} needs a value.");
            int Int() => int.TryParse(Value(), NumberStyles.None, CultureInfo.InvariantCulture, out int v) && v > 0 ? v : throw new ArgumentException($"{flag} must be a positive integer.");
            double Number() => double.TryParse(Value(), NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && v >= 0 && double.IsFinite(v) ? v : throw new ArgumentException($"{flag} must be a non-negative number.");
            switch (flag)
            {
                case "--corpus": o.Corpus = Value(); break;
                case "--out": o.Output = Value(); break;
                case "--device": o.Device = Value(); break;
                case "--steps": s = s with { Steps = Int() }; break;
                case "--batch": s = s with { BatchSize = Int() }; break;
                case "--context": s = s with { Context = Int() }; break;
                case "--eval-context": s = s with { EvaluationContext = Int() }; break;
                case "--eval-every": s = s with { EvaluateEvery = Int() }; break;
                case "--lr": s = s with { PeakLearningRate = Number() }; break;
                case "--warmup": s = s with { WarmupSteps = Int() }; break;
                case "--seed": s = s with { Seed = Int() }; break;
                case "--vocab": o.Vocab = Int(); break;
                case "--hidden": o.Hidden = Int(); break;
                case "--layers": o.Layers = Int(); break;
                case "--heads": o.Heads = Int(); break;
                case "--kv-heads": o.KeyValueHeads = Int(); break;
                case "--intermediate": o.Intermediate = Int(); break;
                case "--chat-fraction": o.ChatFraction = Number(); break;
                case "-h" or "--help": o.Help = true; break;
                default: throw new ArgumentException($"Unknown option '{flag}'.");
            }
        }
        o.Settings = s;
        if (o.Help) return o;
        if (o.Corpus.Length == 0 || o.Output.Length == 0) throw new ArgumentException("--corpus and --out are required.");
        if (o.Device is not ("cpu" or "cuda")) throw new ArgumentException("--device must be cpu or cuda.");
        if (o.Hidden % o.Heads != 0 || o.Heads % o.KeyValueHeads != 0 || o.Hidden / o.Heads % 2 != 0)
            throw new ArgumentException("--hidden must split into an even head size over --heads, and --heads into --kv-heads groups.");
        if (s.EvaluationContext > s.Context) throw new ArgumentException("--eval-context cannot exceed --context.");
        if (o.Vocab < 256 + 3) throw new ArgumentException("--vocab must hold the 256 bytes and 3 special tokens.");
        return o;
    }
}
