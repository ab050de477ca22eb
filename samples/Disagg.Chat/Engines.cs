using Disagg.Coordination;
using Disagg.Cuda;
using Disagg.Cuda.Model;
using Disagg.Transport.InProcess;

namespace Disagg.Chat;

/// <summary>The engine the chat talks to: one colocated engine, or a prefill and a decode engine behind a coordinator.</summary>
internal sealed class Engines : IAsyncDisposable
{
    private readonly List<LlmEngine> _owned = [];

    private Engines(IInferenceEngine engine, string description)
    {
        Engine = engine;
        Description = description;
    }

    public IInferenceEngine Engine { get; private set; }

    public string Description { get; private set; }

    public static Engines Create(ChatOptions options)
    {
        ModelRunnerOptions On(string device) => new() { Device = device, DataType = options.DataType };
        if (!options.Disaggregated)
        {
            var executor = TorchModelExecutor.Load(options.Model, On(options.Device));
            var engine = new LlmEngine(executor);
            return new Engines(engine, $"{executor.Config.Architecture}, colocated on {executor.Device}, {executor.KvLayout.DataType}, {executor.KvBlockCount} KV blocks") { _owned = { engine } };
        }
        string prefillDevice = options.PrefillDevice ?? options.Device, decodeDevice = options.DecodeDevice ?? options.Device;
        var prefillExecutor = TorchModelExecutor.Load(options.Model, On(prefillDevice));
        var prefill = new LlmEngine(prefillExecutor, new LlmEngineOptions { Name = "prefill" });
        var decode = new LlmEngine(TorchModelExecutor.Load(options.Model, On(decodeDevice)), new LlmEngineOptions { Name = "decode" });
        var transport = new InProcessKvTransport(prefill.BlockStore!, decode.BlockStore!);
        var coordinator = new DisaggregatedEngine([prefill], [decode], (_, _) => transport);
        return new Engines(coordinator, $"{prefillExecutor.Config.Architecture}, disaggregated: prefill on {prefillDevice}, decode on {decodeDevice}, {transport.Name} transport") { _owned = { prefill, decode } };
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var engine in _owned) await engine.DisposeAsync();
    }
}
