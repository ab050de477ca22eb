using Disagg.Coordination;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Disagg.Extensions.Hosting.Tests;

public sealed class OptionsTests
{
    [Fact]
    public async Task Invalid_options_fail_host_start_naming_each_bad_option()
    {
        using var host = TestHosts.Build(o =>
        {
            o.ModelPath = " ";
            o.Device = "gpu0";
            o.DataType = "int8";
            o.BlockSize = 0;
            o.KvCacheBytes = 1 << 20;
            o.Scheduler.MaxRunningSequences = 0;
            o.Routing.CacheWeight = double.NaN;
            o.Routing.KvLease = TimeSpan.Zero;
            o.DrainTimeout = TimeSpan.FromSeconds(-1);
            o.DegradedKvCacheUsage = 1.5;
        });

        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        foreach (string option in new[] { "ModelPath", "Device", "DataType", "BlockSize", "KvCacheBytes and KvCacheBlocks",
                     "Scheduler:MaxRunningSequences", "Routing:CacheWeight", "Routing:KvLease", "DrainTimeout", "DegradedKvCacheUsage" })
            Assert.Contains("Disagg option " + option + " ", ex.Message);
        Assert.Equal(10, ex.Failures.Count());
    }

    [Fact]
    public void Only_engines_that_decode_ask_for_the_native_decode_path_and_every_engine_gets_the_same_model_settings()
    {
        var options = new DisaggregatedInferenceOptions { ModelPath = "m", DataType = "bfloat16", BlockSize = 32, KvCacheBlocks = 77, MaxContextLength = 999 };

        var prefill = EngineFactory.RunnerOptions(options, "cuda:0", decodes: false);
        var decode = EngineFactory.RunnerOptions(options, "cuda:1", decodes: true);

        Assert.False(prefill.UseNativeKernels); // no graphs captured, no decode buffers, on a GPU that never decodes
        Assert.True(decode.UseNativeKernels);
        Assert.Equal(("cuda:0", "cuda:1"), (prefill.Device, decode.Device));
        foreach (var runner in new[] { prefill, decode })
        {
            Assert.Equal(("bfloat16", 32, (int?)77, (int?)999), (runner.DataType, runner.BlockSize, runner.KvCacheBlocks, runner.MaxContextLength));
            Assert.True(runner.UseNativePrefill); // prompt steps on the native kernels on both sides: the prefill engine needs them most
        }
    }

    [Fact]
    public async Task Socket_timeouts_are_checked_and_reach_the_transport()
    {
        using (var bad = TestHosts.Build(o => o.Transport.TransferTimeout = TimeSpan.Zero))
        {
            var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => bad.StartAsync());
            Assert.Contains("Disagg option Transport:TransferTimeout ", ex.Message);
        }
        var transport = new KvTransportOptions { SharedSecret = "0123456789abcdef", TokenTimeout = TimeSpan.FromSeconds(3), ReservationLease = Timeout.InfiniteTimeSpan };
        var socket = transport.ToSocketOptions();
        Assert.Equal(TimeSpan.FromSeconds(3), socket.TokenTimeout);
        Assert.Equal(Timeout.InfiniteTimeSpan, socket.ReservationLease);
        Assert.Equal(new Disagg.Transport.Sockets.SocketTransportOptions().TransferTimeout, socket.TransferTimeout); // unset keeps the default
    }

    [Fact]
    public async Task Tcp_transport_needs_an_endpoint_and_a_secret()
    {
        using var host = TestHosts.Build(o =>
        {
            o.Mode = InferenceMode.Disaggregated;
            o.Transport.Kind = KvTransportKind.Tcp;
            o.Transport.Endpoint = "localhost";
        });

        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.Contains("Disagg option Transport:Endpoint must be host:port", ex.Message);
        Assert.Contains("Disagg option Transport:SharedSecret must hold at least 16 characters", ex.Message);
    }

    [Fact]
    public void Defaults_with_a_model_path_are_valid()
    {
        var options = new DisaggregatedInferenceOptions { ModelPath = "/models/x" };
        Assert.True(new DisaggregatedInferenceOptionsValidator().Validate(null, options).Succeeded);
    }

    [Fact]
    public void Options_bind_from_a_configuration_section()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Disagg:ModelPath"] = TestHosts.Llama3,
            ["Disagg:ModelId"] = "tiny",
            ["Disagg:Mode"] = "Disaggregated",
            ["Disagg:PrefillDevice"] = "cuda:0",
            ["Disagg:DecodeDevice"] = "cuda:1",
            ["Disagg:DataType"] = "bfloat16",
            ["Disagg:BlockSize"] = "32",
            ["Disagg:KvCacheBytes"] = "1073741824",
            ["Disagg:MaxContextLength"] = "4096",
            ["Disagg:Scheduler:MaxBatchedTokens"] = "512",
            ["Disagg:Scheduler:MaxRunningSequences"] = "7",
            ["Disagg:Scheduler:EnablePrefixCaching"] = "false",
            ["Disagg:Transport:Kind"] = "InProcess",
            ["Disagg:Routing:Policy"] = "LeastLoaded",
            ["Disagg:Routing:LocalPrefillMaxUncachedTokens"] = "0",
            ["Disagg:Routing:KvLease"] = "00:00:05",
            ["Disagg:Routing:RecoverLocally"] = "false",
            ["Disagg:WarmUp"] = "false",
            ["Disagg:DrainTimeout"] = "00:00:05",
        }).Build();
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddDisaggregatedInference(configuration.GetSection(DisaggregatedInferenceOptions.DefaultSectionName), o => o.Device = "cuda");
        using var provider = services.BuildServiceProvider();

        var options = provider.GetRequiredService<IOptions<DisaggregatedInferenceOptions>>().Value;

        Assert.Equal(TestHosts.Llama3, options.ModelPath);
        Assert.Equal(InferenceMode.Disaggregated, options.Mode);
        Assert.Equal("cuda", options.Device);
        Assert.Equal("cuda:0", options.PrefillDevice);
        Assert.Equal("cuda:1", options.DecodeDevice);
        Assert.Equal("bfloat16", options.DataType);
        Assert.Equal(32, options.BlockSize);
        Assert.Equal(1L << 30, options.KvCacheBytes);
        Assert.Null(options.KvCacheBlocks);
        Assert.Equal(4096, options.MaxContextLength);
        Assert.Equal(512, options.Scheduler.MaxBatchedTokens);
        Assert.Equal(7, options.Scheduler.MaxRunningSequences);
        Assert.False(options.Scheduler.EnablePrefixCaching);
        Assert.Equal(RoutingPolicy.LeastLoaded, options.Routing.Policy);
        Assert.Equal(0, options.Routing.LocalPrefillMaxUncachedTokens);
        Assert.Equal(TimeSpan.FromSeconds(5), options.Routing.KvLease);
        Assert.False(options.Routing.RecoverLocally);
        Assert.False(options.WarmUp);
        Assert.Equal(TimeSpan.FromSeconds(5), options.DrainTimeout);
        Assert.Equal("tiny", provider.GetRequiredService<InferenceService>().ModelId);
    }

    [Fact]
    public void Registration_is_idempotent()
    {
        var services = new ServiceCollection();
        services.AddDisaggregatedInference(o => o.ModelPath = "a");
        services.AddDisaggregatedInference(o => o.BlockSize = 8);

        Assert.Single(services, d => d.ServiceType == typeof(IHostedService));
        Assert.Single(services, d => d.ServiceType == typeof(InferenceService));
        using var provider = services.BuildServiceProvider();
        var options = provider.GetRequiredService<IOptions<DisaggregatedInferenceOptions>>().Value;
        Assert.Equal("a", options.ModelPath);
        Assert.Equal(8, options.BlockSize);
    }

    [Fact]
    public async Task A_prefill_host_and_a_decode_worker_host_answer_like_one_colocated_host()
    {
        string socket = Path.Combine(Path.GetTempPath(), $"disagg-host-{Guid.NewGuid():N}.sock");
        void Unix(KvTransportOptions t)
        {
            t.Kind = KvTransportKind.Unix;
            t.Endpoint = socket;
            t.SharedSecret = "a shared secret of the two hosts";
        }
        await TestHosts.AssertWorkerAndPrefillHostsAnswerLikeColocated(Unix, Unix);
    }

    private static IReadOnlyList<string> Validate(Action<DisaggregatedInferenceOptions> configure)
    {
        var options = new DisaggregatedInferenceOptions { ModelPath = "/models/x" };
        configure(options);
        var result = new DisaggregatedInferenceOptionsValidator().Validate(null, options);
        return result.Failures?.ToList() ?? [];
    }

    [Fact]
    public void Socket_transports_need_a_secret_and_a_decode_worker_needs_a_socket()
    {
        var errors = Validate(o =>
        {
            o.Mode = InferenceMode.DecodeWorker;
            o.Transport.Kind = KvTransportKind.InProcess;
        });
        Assert.Contains(errors, e => e.Contains("Transport:Kind", StringComparison.Ordinal));
        errors = Validate(o =>
        {
            o.Transport.Kind = KvTransportKind.Unix;
            o.Transport.Endpoint = "/tmp/x.sock";
            o.Transport.SharedSecret = "short";
        });
        Assert.Contains(errors, e => e.Contains("Transport:SharedSecret", StringComparison.Ordinal));
    }
}
