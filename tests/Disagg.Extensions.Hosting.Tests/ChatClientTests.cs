using Disagg.Extensions.Hosting.Chat;
using Disagg.Tokenization;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Disagg.Extensions.Hosting.Tests;

public sealed class ChatClientTests
{
    private static readonly ChatMessage[] Conversation =
    [
        new(ChatRole.System, "You are terse."),
        new(ChatRole.User, "Tell me about the sea."),
    ];

    private static readonly ChatTurn[] Turns = [new("system", "You are terse."), new("user", "Tell me about the sea.")];

    [Fact]
    public async Task GetResponseAsync_greedy_equals_TextGenerator_with_right_usage()
    {
        var reference = await TestHosts.ReferenceAsync(Turns, SamplingParameters.Greedy with { MaxTokens = 24 });
        using var host = await TestHosts.StartAsync();
        var client = host.Services.GetRequiredService<IChatClient>();

        var response = await client.GetResponseAsync(Conversation, new ChatOptions { Temperature = 0, MaxOutputTokens = 24 });

        Assert.Equal(reference.Text, response.Text);
        Assert.NotEmpty(response.Text);
        Assert.Equal(ChatRole.Assistant, response.Messages.Single().Role);
        Assert.Equal(reference.PromptTokens, response.Usage!.InputTokenCount);
        Assert.Equal(reference.OutputTokens, response.Usage.OutputTokenCount);
        Assert.Equal(reference.PromptTokens + reference.OutputTokens, response.Usage.TotalTokenCount);
        Assert.Equal(reference.Finish == FinishReason.MaxTokens ? ChatFinishReason.Length : ChatFinishReason.Stop, response.FinishReason);
        Assert.Equal("llama3", response.ModelId);
        await host.StopAsync();
    }

    [Fact]
    public async Task Seeded_sampling_equals_TextGenerator_with_the_same_seed()
    {
        var reference = await TestHosts.ReferenceAsync(Turns, new SamplingParameters { Temperature = 0.9f, TopK = 50, TopP = 0.95f, Seed = 1234, MaxTokens = 20 });
        using var host = await TestHosts.StartAsync();
        var client = host.Services.GetRequiredService<IChatClient>();

        var response = await client.GetResponseAsync(Conversation, new ChatOptions { Temperature = 0.9f, TopK = 50, TopP = 0.95f, Seed = 1234, MaxOutputTokens = 20 });

        Assert.Equal(reference.Text, response.Text);
        Assert.Equal(reference.OutputTokens, response.Usage!.OutputTokenCount);
        await host.StopAsync();
    }

    [Fact]
    public async Task Penalties_and_min_p_reach_the_sampler()
    {
        var plain = await TestHosts.ReferenceAsync(Turns, SamplingParameters.Greedy with { MaxTokens = 24 });
        var penalized = await TestHosts.ReferenceAsync(Turns, SamplingParameters.Greedy with
        {
            MaxTokens = 24, RepetitionPenalty = 1.8f, PresencePenalty = 0.5f, FrequencyPenalty = 0.3f,
        });
        Assert.NotEqual(plain.Text, penalized.Text); // else this fixture could not tell a dropped penalty
        var sampled = await TestHosts.ReferenceAsync(Turns, new SamplingParameters { Temperature = 1.2f, MinP = 0.2f, Seed = 77, MaxTokens = 20 });
        using var host = await TestHosts.StartAsync();
        var client = host.Services.GetRequiredService<IChatClient>();

        var response = await client.GetResponseAsync(Conversation, new ChatOptions
        {
            Temperature = 0, MaxOutputTokens = 24, PresencePenalty = 0.5f, FrequencyPenalty = 0.3f,
            AdditionalProperties = new() { [DisaggChatClient.RepetitionPenaltyProperty] = System.Text.Json.JsonDocument.Parse("1.8").RootElement }, // as a deserialized request holds it
        });
        Assert.Equal(penalized.Text, response.Text);

        var minP = await client.GetResponseAsync(Conversation, new ChatOptions
        {
            Temperature = 1.2f, Seed = 77, MaxOutputTokens = 20, AdditionalProperties = new() { [DisaggChatClient.MinPProperty] = "0.2" }, // as configuration holds it
        });
        Assert.Equal(sampled.Text, minP.Text);

        var bad = await Assert.ThrowsAsync<ArgumentException>(() => client.GetResponseAsync(Conversation,
            new ChatOptions { AdditionalProperties = new() { [DisaggChatClient.MinPProperty] = "lots" } }));
        Assert.Contains("min_p", bad.Message);
        var outOfRange = await Assert.ThrowsAsync<ArgumentException>(() => client.GetResponseAsync(Conversation, new ChatOptions { PresencePenalty = 3 }));
        Assert.Contains("PresencePenalty", outOfRange.Message);
        await host.StopAsync();
    }

    [Fact]
    public async Task Options_a_request_leaves_unset_come_from_the_models_generation_config()
    {
        string model = TestHosts.Llama3With("""{"do_sample": false, "temperature": 0.6, "repetition_penalty": 1.8}""");
        try
        {
            var plain = await TestHosts.ReferenceAsync(Turns, SamplingParameters.Greedy with { MaxTokens = 24 }, model);
            var penalized = await TestHosts.ReferenceAsync(Turns, SamplingParameters.Greedy with { MaxTokens = 24, RepetitionPenalty = 1.8f }, model);
            Assert.NotEqual(plain.Text, penalized.Text);
            using var host = await TestHosts.StartAsync(o => o.ModelPath = model);
            var client = host.Services.GetRequiredService<IChatClient>();
            var defaults = host.Services.GetRequiredService<InferenceService>().SamplingDefaults;
            Assert.True(defaults.IsGreedy);
            Assert.Equal(1.8f, defaults.RepetitionPenalty);

            var unset = await client.GetResponseAsync(Conversation, new ChatOptions { MaxOutputTokens = 24 });
            Assert.Equal(penalized.Text, unset.Text);
            var overridden = await client.GetResponseAsync(Conversation, new ChatOptions
            {
                MaxOutputTokens = 24, AdditionalProperties = new() { [DisaggChatClient.RepetitionPenaltyProperty] = 1f },
            });
            Assert.Equal(plain.Text, overridden.Text); // the request's own value wins
            await host.StopAsync();

            using var off = await TestHosts.StartAsync(o => { o.ModelPath = model; o.UseModelSamplingDefaults = false; });
            var library = off.Services.GetRequiredService<InferenceService>().SamplingDefaults;
            Assert.Equal(new SamplingParameters { MaxTokens = 256 } with { StopTokenIds = library.StopTokenIds, StopStrings = library.StopStrings }, library);
            await off.StopAsync();
        }
        finally
        {
            Directory.Delete(model, recursive: true);
        }
    }

    [Fact]
    public async Task Streaming_yields_chunks_that_add_up_to_the_response_and_ends_with_finish_and_usage()
    {
        using var host = await TestHosts.StartAsync();
        var client = host.Services.GetRequiredService<IChatClient>();
        var options = new ChatOptions { Temperature = 0, MaxOutputTokens = 30 };
        var whole = await client.GetResponseAsync(Conversation, options);

        var updates = new List<ChatResponseUpdate>();
        await foreach (var update in client.GetStreamingResponseAsync(Conversation, options)) updates.Add(update);

        Assert.True(updates.Count > 1, "expected several updates");
        Assert.Equal(whole.Text, string.Concat(updates.Select(u => u.Text)));
        Assert.All(updates, u => Assert.Equal(ChatRole.Assistant, u.Role));
        Assert.Single(updates.Select(u => u.ResponseId).Distinct());
        Assert.All(updates[..^1], u => Assert.Null(u.FinishReason));
        var last = updates[^1];
        Assert.Equal(whole.FinishReason, last.FinishReason);
        var usage = Assert.Single(last.Contents.OfType<UsageContent>()).Details;
        Assert.Equal(whole.Usage!.InputTokenCount, usage.InputTokenCount);
        Assert.Equal(whole.Usage.OutputTokenCount, usage.OutputTokenCount);

        var rebuilt = updates.ToChatResponse();
        Assert.Equal(whole.Text, rebuilt.Text);
        Assert.Equal(whole.Usage.OutputTokenCount, rebuilt.Usage!.OutputTokenCount);
        await host.StopAsync();
    }

    [Fact]
    public async Task Stop_sequence_ends_the_text_before_it()
    {
        using var host = await TestHosts.StartAsync();
        var client = host.Services.GetRequiredService<IChatClient>();
        var free = await client.GetResponseAsync(Conversation, new ChatOptions { Temperature = 0, MaxOutputTokens = 40 });
        Assert.True(free.Text.Length > 8, $"the fixture's answer is too short to cut: '{free.Text}'");
        string stop = free.Text.Substring(free.Text.Length / 2, 3);
        string expected = free.Text[..free.Text.IndexOf(stop, StringComparison.Ordinal)];

        var cut = await client.GetResponseAsync(Conversation, new ChatOptions { Temperature = 0, MaxOutputTokens = 40, StopSequences = [stop] });

        Assert.Equal(expected, cut.Text);
        Assert.Equal(ChatFinishReason.Stop, cut.FinishReason);
        Assert.True(cut.Usage!.OutputTokenCount < free.Usage!.OutputTokenCount);
        await host.StopAsync();
    }

    [Fact]
    public async Task Cancelling_mid_stream_cancels_the_engine_request_and_frees_every_block()
    {
        using var host = await TestHosts.StartAsync(o => o.Scheduler.EnablePrefixCaching = false);
        var client = host.Services.GetRequiredService<IChatClient>();
        var service = host.Services.GetRequiredService<InferenceService>();
        using var cts = new CancellationTokenSource();

        int received = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var update in client.GetStreamingResponseAsync(Conversation, new ChatOptions { Temperature = 0, MaxOutputTokens = 200 }, cts.Token))
            {
                Assert.Null(update.FinishReason); // cancelled before the end
                received++;
                await cts.CancelAsync();
            }
        });
        Assert.Equal(1, received);

        // The engine handles commands in order: once a later request has finished, the cancelled one's abort has been applied.
        await client.GetResponseAsync([new ChatMessage(ChatRole.User, "hi")], new ChatOptions { Temperature = 0, MaxOutputTokens = 2 });
        var engine = Assert.Single(service.Engines);
        var load = engine.GetLoad();
        Assert.Equal(load.TotalKvBlocks, load.FreeKvBlocks); // blocks are freed before a sequence's last token is delivered
        Assert.Equal(0, service.InFlightRequests);
        await host.StopAsync();
    }

    [Fact]
    public async Task Unsupported_content_and_options_are_rejected_clearly()
    {
        using var host = TestHosts.Build(); // not started: rejection happens before the model is needed
        var client = host.Services.GetRequiredService<IChatClient>();

        var image = new ChatMessage(ChatRole.User, [new TextContent("what is this?"), new DataContent(new byte[] { 1, 2, 3 }, "image/png")]);
        var ex = await Assert.ThrowsAsync<NotSupportedException>(() => client.GetResponseAsync([image]));
        Assert.Contains("DataContent", ex.Message);

        var call = new ChatMessage(ChatRole.Assistant, [new FunctionCallContent("c1", "lookup")]);
        ex = await Assert.ThrowsAsync<NotSupportedException>(() => client.GetResponseAsync([new ChatMessage(ChatRole.User, "hi"), call]));
        Assert.Contains("FunctionCallContent", ex.Message);

        var tool = new ChatMessage(ChatRole.Tool, [new FunctionResultContent("c1", "42")]);
        await Assert.ThrowsAsync<NotSupportedException>(() => client.GetResponseAsync([new ChatMessage(ChatRole.User, "hi"), tool]));

        var withTools = new ChatOptions { Tools = [AIFunctionFactory.Create(() => 42, "answer")] };
        ex = await Assert.ThrowsAsync<NotSupportedException>(() => client.GetResponseAsync([new ChatMessage(ChatRole.User, "hi")], withTools));
        Assert.Contains("Tools", ex.Message);

        await Assert.ThrowsAsync<NotSupportedException>(async () =>
        {
            await foreach (var _ in client.GetStreamingResponseAsync([image])) { }
        });

        var badTopP = await Assert.ThrowsAsync<ArgumentException>(() => client.GetResponseAsync([new ChatMessage(ChatRole.User, "hi")], new ChatOptions { TopP = 0 }));
        Assert.Contains("TopP", badTopP.Message);
    }

    [Fact]
    public void GetService_returns_metadata_with_provider_and_model()
    {
        using var host = TestHosts.Build();
        var client = host.Services.GetRequiredService<IChatClient>();

        var metadata = client.GetService<ChatClientMetadata>();

        Assert.NotNull(metadata);
        Assert.Equal("disagg", metadata.ProviderName);
        Assert.Equal("llama3", metadata.DefaultModelId);
        Assert.Same(host.Services.GetRequiredService<InferenceService>(), client.GetService<InferenceService>());
        Assert.Null(client.GetService<ChatClientMetadata>("some key"));
        Assert.Same(host.Services.GetRequiredService<DisaggChatClient>(), client);
    }

    [Fact]
    public async Task The_client_composes_into_a_Microsoft_Extensions_AI_pipeline()
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddDisaggregatedInference(TestHosts.Defaults);
        builder.Services.AddChatClient(sp => sp.GetRequiredService<DisaggChatClient>())
            .ConfigureOptions(o => o.MaxOutputTokens ??= 3);
        using var host = builder.Build();
        await host.StartAsync();
        var client = host.Services.GetRequiredService<IChatClient>();

        Assert.IsNotType<DisaggChatClient>(client);
        var response = await client.GetResponseAsync([new ChatMessage(ChatRole.User, "hi")], new ChatOptions { Temperature = 0 });

        Assert.InRange(response.Usage!.OutputTokenCount!.Value, 1, 3);
        Assert.Equal("disagg", client.GetService<ChatClientMetadata>()!.ProviderName);
        await host.StopAsync();
    }

    [Fact]
    public async Task A_model_without_a_chat_template_is_reported_as_not_supported_for_chat()
    {
        // The qwen2 fixture without its chat_template.jinja (its tokenizer_config.json declares none).
        var dir = Directory.CreateTempSubdirectory("disagg-no-template-");
        try
        {
            string source = Path.Combine(TestHosts.Root, "tests", "Fixtures", "models", "qwen2");
            foreach (string file in Directory.GetFiles(source).Where(f => Path.GetFileName(f) != "chat_template.jinja"))
                File.Copy(file, Path.Combine(dir.FullName, Path.GetFileName(file)));
            using var host = await TestHosts.StartAsync(o =>
            {
                o.ModelPath = dir.FullName;
                o.ModelId = "raw-qwen2";
            });
            var client = host.Services.GetRequiredService<IChatClient>();

            var ex = await Assert.ThrowsAsync<NotSupportedException>(() => client.GetResponseAsync([new ChatMessage(ChatRole.User, "hi")]));

            Assert.Contains("chat template", ex.Message);
            Assert.Contains("raw-qwen2", ex.Message);
            var tokens = await host.Services.GetRequiredService<IInferenceEngine>()
                .GenerateAsync(new InferenceRequest(new[] { 1, 2, 3 }, SamplingParameters.Greedy with { MaxTokens = 2 })).ToListAsync();
            Assert.NotEmpty(tokens); // raw completion still works
            await host.StopAsync();
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void Instructions_and_consecutive_messages_become_template_turns()
    {
        var turns = Chat.DisaggChatClient.ToTurns(
            [new ChatMessage(ChatRole.System, "A"), new ChatMessage(ChatRole.User, "one"), new ChatMessage(ChatRole.User, "two"), new ChatMessage(ChatRole.Assistant, "ok"), new ChatMessage(ChatRole.User, "three")],
            new ChatOptions { Instructions = "Be brief." });

        Assert.Equal(
            [new ChatTurn("system", "Be brief.\n\nA"), new ChatTurn("user", "one\n\ntwo"), new ChatTurn("assistant", "ok"), new ChatTurn("user", "three")],
            turns);
    }
}
