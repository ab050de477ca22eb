using Disagg.Cuda;
using Disagg.Cuda.Model;
using Disagg.Text;
using Disagg.Tokenization;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Disagg.Extensions.Hosting.Tests;

/// <summary>Hosts over the tiny llama3 fixture (tests/Fixtures/models), on the CPU in float32.</summary>
internal static class TestHosts
{
    public static string Root { get; } = FindRoot();

    public static string Llama3 { get; } = Path.Combine(Root, "tests", "Fixtures", "models", "llama3");

    /// <summary>Options every test starts from: the llama3 fixture on the CPU, a small KV pool.</summary>
    public static void Defaults(DisaggregatedInferenceOptions o)
    {
        o.ModelPath = Llama3;
        o.Device = "cpu";
        o.DataType = "float32";
        o.KvCacheBlocks = 64;
    }

    /// <summary>A host (not started) with AddDisaggregatedInference and its health check.</summary>
    public static IHost Build(Action<DisaggregatedInferenceOptions>? configure = null)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddDisaggregatedInference(o =>
        {
            Defaults(o);
            configure?.Invoke(o);
        });
        builder.Services.AddHealthChecks().AddDisaggregatedInferenceCheck();
        return builder.Build();
    }

    /// <summary>A started host.</summary>
    public static async Task<IHost> StartAsync(Action<DisaggregatedInferenceOptions>? configure = null)
    {
        var host = Build(configure);
        await host.StartAsync();
        return host;
    }

    /// <summary>
    /// Starts a decode worker host and a prefill host whose transports <paramref name="worker"/> and <paramref name="prefill"/> set
    /// up, asks the prefill host what a colocated host is asked, and checks the answers are the same and that the worker ends
    /// with every block free.
    /// </summary>
    public static async Task AssertWorkerAndPrefillHostsAnswerLikeColocated(Action<KvTransportOptions> worker, Action<KvTransportOptions> prefill)
    {
        using var colocated = await StartAsync();
        using var workerHost = await StartAsync(o =>
        {
            o.Mode = InferenceMode.DecodeWorker;
            worker(o.Transport);
        });
        using var prefillHost = await StartAsync(o =>
        {
            o.Mode = InferenceMode.Disaggregated;
            o.Routing.LocalPrefillMaxUncachedTokens = 0; // every request goes to the worker
            prefill(o.Transport);
        });

        var options = new ChatOptions { Temperature = 0, MaxOutputTokens = 12 };
        string expected = (await colocated.Services.GetRequiredService<IChatClient>().GetResponseAsync("Hello there", options)).Text;
        string actual = (await prefillHost.Services.GetRequiredService<IChatClient>().GetResponseAsync("Hello there", options)).Text;
        Assert.Equal(expected, actual);

        await prefillHost.StopAsync();
        await workerHost.StopAsync();
        var decode = Assert.Single(workerHost.Services.GetRequiredService<InferenceService>().Engines);
        Assert.Equal(decode.Allocator.Capacity, decode.Allocator.FreeCount + decode.PrefixCachedBlockCount);
    }

    /// <summary>An engine and text generator built by hand, without the host: the reference the hosted chat client must match.</summary>
    public static async Task<(string Text, int PromptTokens, int OutputTokens, FinishReason Finish)> ReferenceAsync(
        IReadOnlyList<ChatTurn> turns, SamplingParameters sampling, string? model = null)
    {
        model ??= Llama3;
        var tokenizer = ModelTokenizer.Load(model);
        await using var engine = new LlmEngine(TorchModelExecutor.Load(model, new ModelRunnerOptions { Device = "cpu", DataType = "float32", KvCacheBlocks = 64 }));
        var generator = new TextGenerator(engine, tokenizer.AsTextTokenizer(skipSpecialTokens: true));
        int[] prompt = [.. tokenizer.Encode(tokenizer.ChatTemplate.Render(turns, addGenerationPrompt: true), addSpecialTokens: false)];
        sampling = sampling with { StopTokenIds = [.. tokenizer.EndOfSequenceTokenIds] };
        var text = new System.Text.StringBuilder();
        TextChunk last = default;
        await foreach (var chunk in generator.GenerateAsync(new InferenceRequest(prompt, sampling)))
        {
            text.Append(chunk.Text);
            last = chunk;
        }
        return (text.ToString(), prompt.Length, last.Token.Index + 1, last.Finish!.Value);
    }

    /// <summary>A copy of the llama3 fixture in a new temporary folder, with <paramref name="fields"/> added to its
    /// generation_config.json. The caller deletes the folder.</summary>
    public static string Llama3With(string generationFields)
    {
        string directory = Directory.CreateTempSubdirectory("disagg-hosting-").FullName;
        foreach (string file in Directory.EnumerateFiles(Llama3))
            File.Copy(file, Path.Combine(directory, Path.GetFileName(file)));
        var generation = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(directory, "generation_config.json")))!.AsObject();
        foreach (var (key, value) in System.Text.Json.Nodes.JsonNode.Parse(generationFields)!.AsObject().ToList())
            generation[key] = value?.DeepClone();
        File.WriteAllText(Path.Combine(directory, "generation_config.json"), generation.ToJsonString());
        return directory;
    }

    private static string FindRoot()
    {
        foreach (string start in new[] { AppContext.BaseDirectory, Environment.CurrentDirectory })
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "Disagg.sln"))) return dir.FullName;
        throw new InvalidOperationException("Could not find the repository root (Disagg.sln) above " + AppContext.BaseDirectory);
    }
}
