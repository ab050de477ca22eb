using Disagg.Kv;
using Disagg.Transport.Sockets;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace Disagg.Transport.Tests.Sockets;

public class FrameCodecTests
{
    private static readonly FrameType[] Known = Enum.GetValues<FrameType>();
    private static readonly KvCacheLayout Layout = new(3, 2, 4, 4, KvDataType.Float16); // 64 bytes per block-layer

    [Property]
    public void Headers_round_trip(byte typeIndex, NonNegativeInt length, ulong streamId)
    {
        var type = Known[typeIndex % Known.Length];
        var bytes = new byte[FrameCodec.HeaderSize];
        FrameCodec.WriteHeader(bytes, type, length.Get, streamId);
        Assert.Equal(new FrameHeader(type, length.Get, streamId), FrameCodec.ReadHeader(bytes, int.MaxValue));
        if (length.Get > 0)
            Assert.Equal(ProtocolErrorCode.FrameTooLarge,
                Assert.Throws<DisaggProtocolException>(() => FrameCodec.ReadHeader(bytes, length.Get - 1)).Code);
    }

    [Property]
    public void Requests_round_trip_with_their_seed(NonEmptyArray<NonNegativeInt> prompt, NonNegativeInt[] stops, bool ignoreEos, bool explicitSeed,
        ulong seed, byte temperature, byte topK, byte topP, PositiveInt maxTokens, string[] stopStrings)
    {
        var sampling = new SamplingParameters
        {
            Temperature = temperature / 10f,
            TopK = topK,
            TopP = (topP + 1) / 256f,
            MaxTokens = maxTokens.Get,
            IgnoreEndOfSequence = ignoreEos,
            Seed = explicitSeed ? seed : null,
            StopTokenIds = stops.Select(s => s.Get).ToArray(),
            StopStrings = stopStrings.Where(s => !string.IsNullOrEmpty(s) && !s.Any(char.IsSurrogate)).ToArray(),
        };
        var request = new InferenceRequest(prompt.Get.Select(p => p.Get).ToArray(), sampling);
        var payload = new byte[FrameCodec.ReserveSize(request)];
        FrameCodec.WriteReserve(payload, request);
        var decoded = FrameCodec.ReadReserve(payload);

        Assert.Equal(request.Id, decoded.Id);
        Assert.Equal(request.Seed, decoded.Seed);
        Assert.Equal(request.PromptTokens.ToArray(), decoded.PromptTokens.ToArray());
        Assert.Equal(sampling with { Seed = request.Seed, StopTokenIds = decoded.Sampling.StopTokenIds, StopStrings = decoded.Sampling.StopStrings },
            decoded.Sampling);
        Assert.Equal(sampling.StopTokenIds, decoded.Sampling.StopTokenIds);
        Assert.Equal(sampling.StopStrings, decoded.Sampling.StopStrings);
    }

    [Property]
    public void Reservations_tokens_acks_loads_and_errors_round_trip(NonNegativeInt cached, NonNegativeInt length, int[] ids,
        NonNegativeInt token, NonNegativeInt index, byte finish, int blocks, long bytes, int w, int r, int f, int t, ushort code, string message)
    {
        var reserved = new byte[FrameCodec.ReservedSize(ids.Length)];
        FrameCodec.WriteReserved(reserved, cached.Get, length.Get, ids);
        var (decodedCached, decodedLength, decodedIds) = FrameCodec.ReadReserved(reserved);
        Assert.Equal((cached.Get, length.Get), (decodedCached, decodedLength));
        Assert.Equal(ids, decodedIds);

        FinishReason? reason = finish % 6 == 5 ? null : (FinishReason)(finish % 6);
        var generated = new GeneratedToken(token.Get, index.Get, 0, reason);
        var tokenBytes = new byte[FrameCodec.TokenPayloadSize];
        FrameCodec.WriteToken(tokenBytes, generated);
        Assert.Equal(generated with { Timestamp = 0 }, FrameCodec.ReadToken(tokenBytes, FrameType.Token) with { Timestamp = 0 });

        var ack = new byte[FrameCodec.TransferAckSize];
        FrameCodec.WriteTransferAck(ack, blocks, bytes);
        Assert.Equal((blocks, bytes), FrameCodec.ReadTransferAck(ack));

        var load = new EngineLoad(w, r, f, t);
        var loadBytes = new byte[FrameCodec.LoadSize];
        FrameCodec.WriteLoad(loadBytes, load);
        Assert.Equal(load, FrameCodec.ReadLoad(loadBytes));

        message ??= "";
        var protocolCode = Enum.IsDefined((ProtocolErrorCode)code) ? (ProtocolErrorCode)code : ProtocolErrorCode.RemoteFailure;
        var error = new byte[FrameCodec.ErrorSize(message)];
        FrameCodec.WriteError(error, protocolCode, message);
        var (decodedCode, decodedMessage) = FrameCodec.ReadError(error);
        Assert.Equal(protocolCode, decodedCode);
        if (System.Text.Encoding.UTF8.GetByteCount(message) <= FrameCodec.MaxErrorMessageBytes && !message.Any(char.IsSurrogate))
            Assert.Equal(message, decodedMessage);
    }

    [Fact]
    public void Long_error_messages_are_cut_to_the_limit_on_a_character_boundary()
    {
        var message = new string('é', 2000);
        var error = new byte[FrameCodec.ErrorSize(message)];
        FrameCodec.WriteError(error, ProtocolErrorCode.RemoteFailure, message);
        var (_, decoded) = FrameCodec.ReadError(error);
        Assert.Equal(FrameCodec.MaxErrorMessageBytes / 2, decoded.Length);
        Assert.All(decoded, c => Assert.Equal('é', c));
    }

    [Property]
    public void Block_frames_round_trip_and_any_flipped_bit_is_caught(NonEmptyArray<int> ids, int seed, NonNegativeInt flip)
    {
        int layer = Math.Abs(seed % Layout.NumLayers);
        var data = new byte[ids.Get.Length * Layout.BytesPerBlockPerLayer];
        new Random(seed).NextBytes(data);
        var payload = new byte[FrameCodec.BlocksSize(ids.Get.Length, Layout.BytesPerBlockPerLayer)];
        FrameCodec.WriteBlocks(payload, layer, ids.Get, data, static (d, span) => d.CopyTo(span));

        var (decodedLayer, count) = FrameCodec.ReadBlocks(payload, Layout);
        Assert.Equal(layer, decodedLayer);
        Assert.Equal(ids.Get.Length, count);
        Assert.Equal(data, FrameCodec.BlockData(payload, count).ToArray());
        var decodedIds = FrameCodec.BlockIdBytes(payload, count).ToArray();
        Assert.Equal(ids.Get, Enumerable.Range(0, count).Select(i => BitConverter.ToInt32(decodedIds, 4 * i)));

        int bit = flip.Get % (payload.Length * 8);
        payload[bit / 8] ^= (byte)(1 << (bit % 8));
        var error = Assert.Throws<DisaggProtocolException>(() => FrameCodec.ReadBlocks(payload, Layout));
        Assert.Contains(error.Code, new[] { ProtocolErrorCode.ChecksumMismatch, ProtocolErrorCode.MalformedPayload });
    }

    /// <summary>A block frame split across receive segments anywhere (the worker reads it in place) decodes as the contiguous
    /// frame does: the same layer, count, ids and data, and the same verdict on a flipped bit.</summary>
    [Property(MaxTest = 200)]
    public void Block_frames_read_in_segments_decode_as_contiguous_ones(NonEmptyArray<int> ids, int seed, int[] cuts, NonNegativeInt flip, bool corrupt)
    {
        int layer = Math.Abs(seed % Layout.NumLayers);
        var data = new byte[ids.Get.Length * Layout.BytesPerBlockPerLayer];
        new Random(seed).NextBytes(data);
        var payload = new byte[FrameCodec.BlocksSize(ids.Get.Length, Layout.BytesPerBlockPerLayer)];
        FrameCodec.WriteBlocks(payload, layer, ids.Get, data, static (d, span) => d.CopyTo(span));
        if (corrupt)
        {
            int bit = flip.Get % (payload.Length * 8);
            payload[bit / 8] ^= (byte)(1 << (bit % 8));
        }
        var segmented = Disagg.Tests.TestModel.SegmentedSequence.Of(payload, (cuts ?? []).Select(c => Math.Abs(c % (payload.Length + 1))));

        (int, int)? expected = null, actual = null;
        ProtocolErrorCode? expectedError = null, actualError = null;
        try { expected = FrameCodec.ReadBlocks(payload, Layout); } catch (DisaggProtocolException e) { expectedError = e.Code; }
        try { actual = FrameCodec.ReadBlocks(segmented, Layout); } catch (DisaggProtocolException e) { actualError = e.Code; }

        Assert.Equal(expected, actual);
        Assert.Equal(expectedError, actualError);
        Assert.Equal(corrupt, expectedError is not null);
        if (actual is { } ok) Assert.Equal(data, System.Buffers.BuffersExtensions.ToArray(FrameCodec.BlockData(segmented, ok.Item2)));
    }

    /// <summary>Decoders see hostile bytes: they may only throw the protocol's own exception, whatever the input.</summary>
    [Property(MaxTest = 500)]
    public void Decoders_reject_arbitrary_bytes_only_with_protocol_errors(byte[] bytes, byte typeIndex)
    {
        bytes ??= [];
        Action[] decoders =
        [
            () => FrameCodec.ReadReserve(bytes),
            () => FrameCodec.ReadReserved(bytes),
            () => FrameCodec.ReadBlocks(bytes, Layout),
            () => FrameCodec.ReadError(bytes),
            () => FrameCodec.ReadToken(bytes, FrameType.Token),
            () => FrameCodec.ReadTransferAck(bytes),
            () => FrameCodec.ReadLoad(bytes),
            () => FrameCodec.ReadReady(bytes),
            () => FrameCodec.ReadHello(bytes, new byte[FrameCodec.NonceSize]),
            () => FrameCodec.ReadChallenge(bytes, new byte[FrameCodec.NonceSize], new byte[FrameCodec.MacSize]),
            () => { if (bytes.Length >= FrameCodec.HeaderSize) FrameCodec.ReadHeader(bytes, 1 << 20); },
        ];
        var decoder = decoders[typeIndex % decoders.Length];
        try { decoder(); }
        catch (DisaggProtocolException) { }
    }

    [Property(MaxTest = 200)]
    public void A_reserve_payload_with_a_huge_claimed_count_is_rejected_without_allocating_it(NonNegativeInt cut)
    {
        var request = new InferenceRequest(new[] { 1, 2, 3 });
        var payload = new byte[FrameCodec.ReserveSize(request)];
        FrameCodec.WriteReserve(payload, request);
        // The prompt count is the last count before the prompt itself: claim two billion tokens.
        BitConverter.TryWriteBytes(payload.AsSpan(payload.Length - 16), int.MaxValue);
        long before = GC.GetAllocatedBytesForCurrentThread();
        Assert.Throws<DisaggProtocolException>(() => FrameCodec.ReadReserve(payload.AsSpan(0, payload.Length - cut.Get % 4)));
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 1 << 20, "The decoder allocated for a count the payload cannot hold.");
    }
}
