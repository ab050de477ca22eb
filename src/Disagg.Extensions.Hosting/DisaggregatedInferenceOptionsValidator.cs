using System.Globalization;
using System.Text.RegularExpressions;
using Disagg.Coordination;
using Microsoft.Extensions.Options;

namespace Disagg.Extensions.Hosting;

/// <summary>Checks <see cref="DisaggregatedInferenceOptions"/> and names every bad option (its configuration path) in the failure.</summary>
internal sealed partial class DisaggregatedInferenceOptionsValidator : IValidateOptions<DisaggregatedInferenceOptions>
{
    [GeneratedRegex("^(cpu|cuda(:[0-9]+)?)$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex DevicePattern();

    public ValidateOptionsResult Validate(string? name, DisaggregatedInferenceOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var errors = new List<string>();
        void Fail(string option, string problem) => errors.Add(string.Create(CultureInfo.InvariantCulture, $"{option} {problem}"));
        void CheckSecret(KvTransportOptions transport)
        {
            if (transport.SharedSecret is not { Length: >= 16 })
                Fail($"{nameof(options.Transport)}:{nameof(transport.SharedSecret)}", "must hold at least 16 characters for the socket transports.");
        }

        if (string.IsNullOrWhiteSpace(options.ModelPath))
            Fail(nameof(options.ModelPath), "is required: the directory of a Hugging Face model (config.json, *.safetensors, tokenizer.json).");
        if (options.ModelId is { } id && string.IsNullOrWhiteSpace(id))
            Fail(nameof(options.ModelId), "must not be blank: leave it unset to use the model directory's name.");
        if (!Enum.IsDefined(options.Mode))
            Fail(nameof(options.Mode), $"'{options.Mode}' is not one of {string.Join(", ", Enum.GetNames<InferenceMode>())}.");

        CheckDevice(nameof(options.Device), options.Device, required: true);
        CheckDevice(nameof(options.PrefillDevice), options.PrefillDevice, required: false);
        CheckDevice(nameof(options.DecodeDevice), options.DecodeDevice, required: false);

        if (options.DataType is not (null or "float32" or "bfloat16" or "float16"))
            Fail(nameof(options.DataType), $"'{options.DataType}' is not one of float32, bfloat16, float16 (or unset for the device's default).");
        if (options.BlockSize is < 1 or > 1024)
            Fail(nameof(options.BlockSize), $"must be in [1, 1024] (it is {options.BlockSize}).");
        if (options.KvCacheBytes is < 1)
            Fail(nameof(options.KvCacheBytes), $"must be positive (it is {options.KvCacheBytes}).");
        if (options.KvCacheBlocks is < 1)
            Fail(nameof(options.KvCacheBlocks), $"must be positive (it is {options.KvCacheBlocks}).");
        if (options.KvCacheBytes is not null && options.KvCacheBlocks is not null)
            Fail($"{nameof(options.KvCacheBytes)} and {nameof(options.KvCacheBlocks)}", "are both set: set one of them.");
        if (options.MaxContextLength is < 2)
            Fail(nameof(options.MaxContextLength), $"must be at least 2 (it is {options.MaxContextLength}).");

        if (options.Scheduler is not { } scheduler)
        {
            Fail(nameof(options.Scheduler), "must not be null.");
        }
        else
        {
            if (scheduler.MaxBatchedTokens < 1)
                Fail($"{nameof(options.Scheduler)}:{nameof(scheduler.MaxBatchedTokens)}", $"must be at least 1 (it is {scheduler.MaxBatchedTokens}).");
            if (scheduler.MaxRunningSequences < 1)
                Fail($"{nameof(options.Scheduler)}:{nameof(scheduler.MaxRunningSequences)}", $"must be at least 1 (it is {scheduler.MaxRunningSequences}).");
            if (scheduler.MaxWaitingRequests < 1)
                Fail($"{nameof(options.Scheduler)}:{nameof(scheduler.MaxWaitingRequests)}", $"must be at least 1 (it is {scheduler.MaxWaitingRequests}).");
        }

        if (options.Transport is not { } transport)
        {
            Fail(nameof(options.Transport), "must not be null.");
        }
        else
        {
            string kind = $"{nameof(options.Transport)}:{nameof(transport.Kind)}";
            string endpoint = $"{nameof(options.Transport)}:{nameof(transport.Endpoint)}";
            switch (transport.Kind)
            {
                case KvTransportKind.InProcess:
                    break;
                case KvTransportKind.Unix:
                    if (string.IsNullOrWhiteSpace(transport.Endpoint)) Fail(endpoint, "is required for the Unix transport: the socket's path.");
                    CheckSecret(transport);
                    break;
                case KvTransportKind.Tcp:
                    if (string.IsNullOrWhiteSpace(transport.Endpoint) || !IsHostAndPort(transport.Endpoint))
                        Fail(endpoint, $"must be host:port for the Tcp transport (it is '{transport.Endpoint}').");
                    CheckSecret(transport);
                    break;
                default:
                    Fail(kind, $"'{transport.Kind}' is not one of {string.Join(", ", Enum.GetNames<KvTransportKind>())}.");
                    break;
            }
            // The timeouts, the lease and TLS, checked by the socket transport's own rules (the secret is checked above).
            var socket = transport.ToSocketOptions();
            socket.SharedSecret = new byte[16];
            socket.Tls = TlsOptionsValidation.Load(transport, server: options.Mode == InferenceMode.DecodeWorker, Fail);
            try { socket.Validate(); }
            catch (ArgumentException e) { Fail($"{nameof(options.Transport)}:{TlsOptionsValidation.ConfigurationName(e.ParamName)}", e.Message.Split(" (Parameter")[0]); }
            finally { TlsOptionsValidation.Release(socket.Tls); }
        }

        if (options.Mode == InferenceMode.DecodeWorker && options.Transport is { Kind: KvTransportKind.InProcess })
            Fail($"{nameof(options.Transport)}:{nameof(KvTransportOptions.Kind)}", "must be Unix or Tcp for a DecodeWorker: it serves other processes.");

        if (options.Routing is not { } routing)
        {
            Fail(nameof(options.Routing), "must not be null.");
        }
        else
        {
            if (!Enum.IsDefined(routing.Policy))
                Fail($"{nameof(options.Routing)}:{nameof(routing.Policy)}", $"'{routing.Policy}' is not one of {string.Join(", ", Enum.GetNames<RoutingPolicy>())}.");
            if (routing.LocalPrefillMaxUncachedTokens < 0)
                Fail($"{nameof(options.Routing)}:{nameof(routing.LocalPrefillMaxUncachedTokens)}", $"must be 0 or more (it is {routing.LocalPrefillMaxUncachedTokens}).");
            if (!(routing.CacheWeight >= 0 && double.IsFinite(routing.CacheWeight)))
                Fail($"{nameof(options.Routing)}:{nameof(routing.CacheWeight)}", $"must be a finite number, 0 or more (it is {routing.CacheWeight}).");
            if (routing.KvLease <= TimeSpan.Zero)
                Fail($"{nameof(options.Routing)}:{nameof(routing.KvLease)}", $"must be positive (it is {routing.KvLease}).");
        }

        if (options.DrainTimeout < TimeSpan.Zero && options.DrainTimeout != Timeout.InfiniteTimeSpan)
            Fail(nameof(options.DrainTimeout), $"must be zero or more, or infinite (-1 ms) (it is {options.DrainTimeout}).");
        if (options.DefaultMaxOutputTokens < 1)
            Fail(nameof(options.DefaultMaxOutputTokens), $"must be at least 1 (it is {options.DefaultMaxOutputTokens}).");
        if (!(options.DegradedKvCacheUsage > 0 && options.DegradedKvCacheUsage <= 1))
            Fail(nameof(options.DegradedKvCacheUsage), $"must be in (0, 1] (it is {options.DegradedKvCacheUsage}).");
        if (!(options.DegradedQueueRatio > 0 && options.DegradedQueueRatio <= 1))
            Fail(nameof(options.DegradedQueueRatio), $"must be in (0, 1] (it is {options.DegradedQueueRatio}).");

        if (errors.Count == 0) return ValidateOptionsResult.Success;
        string prefix = string.IsNullOrEmpty(name) ? "Disagg option" : $"Disagg option (named options '{name}')";
        return ValidateOptionsResult.Fail(errors.Select(e => $"{prefix} {e}"));

        void CheckDevice(string option, string? device, bool required)
        {
            if (device is null && !required) return;
            if (string.IsNullOrWhiteSpace(device) || !DevicePattern().IsMatch(device))
                Fail(option, $"'{device}' is not a device: use cpu, cuda or cuda:N.");
        }
    }

    private static bool IsHostAndPort(string endpoint)
    {
        int colon = endpoint.LastIndexOf(':');
        return colon > 0 && ushort.TryParse(endpoint.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out ushort port) && port > 0;
    }
}
