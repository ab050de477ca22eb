using Disagg.Cuda;
using Disagg.Cuda.Loading;
using Disagg.Cuda.Model;
using Disagg.Cuda.Runtime;
using Disagg.Train.Model;
using Disagg.Train.Output;
using Disagg.Train.Tokenizer;
using Disagg.Train.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Disagg.Train.Tests;

/// <summary>What the trainer writes is a checkpoint Disagg's normal loader reads and runs as the trainer's model does.</summary>
public sealed class CheckpointTests : IDisposable
{
    private readonly string _directory = TestData.TemporaryDirectory();

    public CheckpointTests() => TorchRuntime.Initialize();

    private static ModelShape TinyShape => new(TestData.Vocabulary.Size, HiddenSize: 32, Layers: 2, Heads: 4, KeyValueHeads: 2, IntermediateSize: 64, MaxPositions: 64);

    [Fact]
    public void Parameter_names_and_shapes_are_those_the_loader_expects()
    {
        torch.manual_seed(1);
        using var model = new TrainingLlama(TinyShape, torch.CPU);
        ConfigFiles.Write(TinyShape, TestData.Vocabulary, _directory);
        var config = ModelConfig.Load(Path.Combine(_directory, ModelConfig.FileName));

        var expected = ModelWeightLayout.ExpectedTensors(config).Select(t => (t.Name, string.Join(',', t.Shape))).Order();
        var written = Checkpoint.Describe(model).Select(t => (t.Name, string.Join(',', t.Shape))).Order();
        Assert.Equal(expected, written);
        Assert.Equal(TinyShape.ParameterCount, model.parameters().Sum(p => p.numel()));
    }

    [Fact]
    public async Task The_written_directory_generates_in_Disagg_what_the_trainer_model_predicts()
    {
        // A few steps of training make the predictions peaked, so greedy decoding does not hinge on rounding.
        torch.manual_seed(2);
        var vocabulary = TestData.Vocabulary;
        int[] tokens = [.. vocabulary.Encode(TestData.Text)];
        using var model = new TrainingLlama(TinyShape, torch.CPU);
        Trainer.Run(model, tokens, tokens[..200], new TrainSettings { Steps = 40, BatchSize = 8, Context = 32, WarmupSteps = 4, EvaluateEvery = 40, EvaluationContext = 32 }, torch.CPU, TextWriter.Null);
        Checkpoint.RoundToBFloat16(model);
        Checkpoint.Write(model, _directory);
        ConfigFiles.Write(TinyShape, vocabulary, _directory);
        TokenizerFiles.Write(vocabulary, _directory, TinyShape.MaxPositions);

        int[] prompt = [.. vocabulary.Encode("And God said, Let there be")];
        var expected = GreedyWithTheTrainingModel(model, prompt, 20);

        using var executor = TorchModelExecutor.Load(_directory, new ModelRunnerOptions { Device = "cpu", DataType = "float32", KvCacheBlocks = 16 });
        await using var engine = new LlmEngine(executor);
        var generated = new List<int>();
        await foreach (var token in engine.GenerateAsync(new InferenceRequest(prompt, SamplingParameters.Greedy with { MaxTokens = 20, IgnoreEndOfSequence = true })))
            generated.Add(token.TokenId);
        Assert.Equal(expected, generated);
    }

    /// <summary>Greedy decoding by full forward passes of the training model, checking each choice is clear of rounding.</summary>
    private static List<int> GreedyWithTheTrainingModel(TrainingLlama model, int[] prompt, int count)
    {
        model.eval();
        using var noGrad = torch.no_grad();
        var ids = prompt.ToList();
        for (int i = 0; i < count; i++)
        {
            using var scope = torch.NewDisposeScope();
            var logits = model.forward(torch.tensor(ids.Select(id => (long)id).ToArray(), [1, ids.Count]))[0, -1];
            var top = logits.topk(2);
            float gap = top.values[0].item<float>() - top.values[1].item<float>();
            Assert.True(gap > 1e-3f, $"token {i}: the two best logits are {gap} apart, too close to compare across implementations");
            ids.Add((int)top.indexes[0].item<long>());
        }
        return ids[prompt.Length..];
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
