using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Disagg.Extensions.Hosting.Metrics;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Disagg.Extensions.Hosting.Tests;

public sealed class MetricsTests
{
    /// <summary>Collects the measurements of one host's Disagg meter (other tests' hosts run in parallel with meters of the same name).</summary>
    private sealed class Collector : IDisposable
    {
        private readonly MeterListener _listener = new();

        public Collector(object meterScope)
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == DisaggMetrics.MeterName && ReferenceEquals(instrument.Meter.Scope, meterScope))
                    listener.EnableMeasurementEvents(instrument);
            };
            _listener.SetMeasurementEventCallback<double>((i, v, tags, _) => Add(i, v, tags));
            _listener.SetMeasurementEventCallback<int>((i, v, tags, _) => Add(i, v, tags));
            _listener.SetMeasurementEventCallback<long>((i, v, tags, _) => Add(i, v, tags));
            _listener.Start();
        }

        public ConcurrentQueue<(string Name, string? Unit, double Value, Dictionary<string, object?> Tags)> Measurements { get; } = new();

        public void Observe() => _listener.RecordObservableInstruments();

        public List<(string Name, string? Unit, double Value, Dictionary<string, object?> Tags)> Of(string name) =>
            [.. Measurements.Where(m => m.Name == name)];

        private void Add(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags) =>
            Measurements.Enqueue((instrument.Name, instrument.Unit, value, tags.ToArray().ToDictionary(t => t.Key, t => t.Value)));

        public void Dispose() => _listener.Dispose();
    }

    [Fact]
    public async Task A_chat_request_records_gen_ai_latency_and_token_usage_and_the_gauges_report_the_engine()
    {
        using var host = TestHosts.Build(o => o.WarmUp = false);
        using var collector = new Collector(host.Services.GetRequiredService<IMeterFactory>());
        await host.StartAsync();
        var client = host.Services.GetRequiredService<IChatClient>();

        var response = await client.GetResponseAsync([new ChatMessage(ChatRole.User, "Count to ten.")], new ChatOptions { Temperature = 0, MaxOutputTokens = 12 });
        collector.Observe();

        var ttft = Assert.Single(collector.Of("gen_ai.server.time_to_first_token"));
        Assert.Equal("s", ttft.Unit);
        Assert.True(ttft.Value > 0);
        Assert.Equal("chat", ttft.Tags["gen_ai.operation.name"]);
        Assert.Equal("disagg", ttft.Tags["gen_ai.provider.name"]);
        Assert.Equal("llama3", ttft.Tags["gen_ai.request.model"]);
        Assert.True(Assert.Single(collector.Of("gen_ai.server.time_per_output_token")).Value > 0);
        var duration = Assert.Single(collector.Of("gen_ai.server.request.duration"));
        Assert.True(duration.Value >= ttft.Value);
        Assert.False(duration.Tags.ContainsKey("error.type"));

        var usage = collector.Of("gen_ai.client.token.usage");
        Assert.All(usage, u => Assert.Equal("{token}", u.Unit));
        Assert.Equal((double)response.Usage!.InputTokenCount!.Value, usage.Single(u => (string?)u.Tags["gen_ai.token.type"] == "input").Value);
        Assert.Equal((double)response.Usage.OutputTokenCount!.Value, usage.Single(u => (string?)u.Tags["gen_ai.token.type"] == "output").Value);

        Assert.InRange(Assert.Single(collector.Of("disagg.requests.waiting")).Value, 0, 1); // snapshots published once per engine loop turn
        Assert.InRange(Assert.Single(collector.Of("disagg.sequences.running")).Value, 0, 1);
        Assert.InRange(Assert.Single(collector.Of("disagg.kv_cache.usage")).Value, 0, 1);
        Assert.InRange(Assert.Single(collector.Of("disagg.prefix_cache.hit_rate")).Value, 0, 1);
        await host.StopAsync();
    }

    [Fact]
    public async Task A_failed_or_cancelled_request_records_its_duration_with_the_error_type()
    {
        using var host = TestHosts.Build(o => o.WarmUp = false);
        using var collector = new Collector(host.Services.GetRequiredService<IMeterFactory>());
        await host.StartAsync();
        var engine = host.Services.GetRequiredService<IInferenceEngine>();
        using var cts = new CancellationTokenSource();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var _ in engine.GenerateAsync(new InferenceRequest(new[] { 700, 1, 2, 3 }, SamplingParameters.Greedy with { MaxTokens = 100, IgnoreEndOfSequence = true }), cts.Token))
                await cts.CancelAsync();
        });

        var duration = Assert.Single(collector.Of("gen_ai.server.request.duration"));
        Assert.Equal("text_completion", duration.Tags["gen_ai.operation.name"]);
        Assert.EndsWith("CanceledException", (string?)duration.Tags["error.type"]);
        Assert.Single(collector.Of("gen_ai.server.time_to_first_token"));
        await host.StopAsync();
    }

    [Fact]
    public void RecordKvTransfer_adds_bytes_and_blocks_and_records_the_duration()
    {
        using var factory = new TestMeterFactory();
        using var metrics = new DisaggMetrics(factory);
        using var collector = new Collector(factory);

        metrics.RecordKvTransfer(new KvTransferResult(Blocks: 3, Bytes: 3 * 4096, Elapsed: TimeSpan.FromMilliseconds(2)), "inproc");

        var bytes = Assert.Single(collector.Of("disagg.kv_transfer.size"));
        Assert.Equal(3 * 4096, bytes.Value);
        Assert.Equal("By", bytes.Unit);
        Assert.Equal("inproc", bytes.Tags["disagg.transport"]);
        Assert.Equal(3, Assert.Single(collector.Of("disagg.kv_transfer.blocks")).Value);
        Assert.Equal(0.002, Assert.Single(collector.Of("disagg.kv_transfer.duration")).Value, 6);
    }

    [Fact]
    public async Task Disaggregated_mode_answers_like_colocated_and_meters_its_KV_transfers()
    {
        var chat = new ChatMessage[] { new(ChatRole.User, "Please write a long and detailed story about a lighthouse keeper and the sea, with many characters.") };
        var options = new ChatOptions { Temperature = 0, MaxOutputTokens = 16 };
        string colocatedText;
        using (var colocated = await TestHosts.StartAsync(o => o.WarmUp = false))
        {
            colocatedText = (await colocated.Services.GetRequiredService<IChatClient>().GetResponseAsync(chat, options)).Text;
            await colocated.StopAsync();
        }

        using var host = TestHosts.Build(o =>
        {
            o.Mode = InferenceMode.Disaggregated;
            o.Routing.LocalPrefillMaxUncachedTokens = 0; // always prefill remotely and move the KV
        });
        using var collector = new Collector(host.Services.GetRequiredService<IMeterFactory>());
        await host.StartAsync();
        var service = host.Services.GetRequiredService<InferenceService>();
        Assert.Equal(["prefill", "decode"], service.Engines.Select(e => e.Name));

        var response = await host.Services.GetRequiredService<IChatClient>().GetResponseAsync(chat, options);

        Assert.Equal(colocatedText, response.Text);
        var moved = collector.Of("disagg.kv_transfer.size");
        Assert.NotEmpty(moved);
        Assert.All(moved, m => Assert.True(m.Value > 0));
        Assert.NotEmpty(collector.Of("disagg.kv_transfer.duration"));
        await host.StopAsync();
    }

    private sealed class TestMeterFactory : IMeterFactory
    {
        private readonly List<Meter> _meters = [];

        public Meter Create(MeterOptions options)
        {
            var meter = new Meter(options.Name, options.Version, options.Tags, scope: this);
            _meters.Add(meter);
            return meter;
        }

        public void Dispose()
        {
            foreach (var meter in _meters) meter.Dispose();
        }
    }
}
