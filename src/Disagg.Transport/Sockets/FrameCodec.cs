using System.Buffers;
using System.Buffers.Binary;
using System.IO.Hashing;
using System.Runtime.InteropServices;
using System.Text;
using Disagg.Kv;

namespace Disagg.Transport.Sockets;

/// <summary>Frame types of protocol version 3 (see Protocol.md next to this file).</summary>
internal enum FrameType : byte
{
    Hello = 1,
    Challenge = 2,
    Proof = 3,
    Ready = 4,
    Reserve = 16,
    Reserved = 17,
    Blocks = 18,
    TransferComplete = 19,
    TransferAck = 20,
    DecodeStart = 21,
    Token = 22,
    Cancel = 23,
    Release = 24,
    Load = 25,
    DirectTransferComplete = 26,
    Ping = 27,
    Error = 31,
}

/// <summary>The fixed 20-byte frame header.</summary>
internal readonly record struct FrameHeader(FrameType Type, int PayloadLength, ulong StreamId);

/// <summary>
/// Encodes and decodes frames. Everything is little-endian. Decoders treat input as hostile: every count is checked against
/// the bytes actually present before anything is allocated, and every violation throws <see cref="DisaggProtocolException"/>.
/// </summary>
internal static class FrameCodec
{
    public const uint Magic = 0x564B4744; // "DGKV" in little-endian byte order
    public const byte Version = 3;
    public const int HeaderSize = 20;
    public const int NonceSize = 32;
    public const int MacSize = 32;
    public const int MaxErrorMessageBytes = 1024;
    /// <summary>Payload limit before authentication: handshake frames are tiny, so an unauthenticated peer cannot make us buffer more.</summary>
    public const int HandshakePayloadLimit = 256;
    public const int BlocksFixedBytes = 8 + 8; // layer, count, trailing checksum
    public const int TokenPayloadSize = 9;
    /// <summary>The first byte of a TLS connection (a handshake record): how a plaintext peer recognizes a TLS one.</summary>
    public const byte TlsHandshakeRecord = 0x16;
    /// <summary>The first byte of every frame ('D'): how a TLS worker recognizes a plaintext client.</summary>
    public const byte FirstMagicByte = (byte)(Magic & 0xFF);

    public static bool IsKnown(FrameType type) => type switch
    {
        FrameType.Hello or FrameType.Challenge or FrameType.Proof or FrameType.Ready or FrameType.Reserve or FrameType.Reserved
            or FrameType.Blocks or FrameType.TransferComplete or FrameType.TransferAck or FrameType.DecodeStart or FrameType.Token
            or FrameType.Cancel or FrameType.Release or FrameType.Load or FrameType.DirectTransferComplete or FrameType.Ping or FrameType.Error => true,
        _ => false,
    };

    public static void WriteHeader(Span<byte> destination, FrameType type, int payloadLength, ulong streamId)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(destination, Magic);
        destination[4] = Version;
        destination[5] = (byte)type;
        BinaryPrimitives.WriteUInt16LittleEndian(destination[6..], 0);
        BinaryPrimitives.WriteInt32LittleEndian(destination[8..], payloadLength);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[12..], streamId);
    }

    /// <summary>Validates and decodes a header, before any of its payload is read.</summary>
    public static FrameHeader ReadHeader(ReadOnlySpan<byte> source, int maxPayload)
    {
        if (BinaryPrimitives.ReadUInt32LittleEndian(source) != Magic)
            throw Violation(ProtocolErrorCode.BadMagic, source[0] == TlsHandshakeRecord
                ? "The frame does not start with the protocol magic; it looks like a TLS handshake (the peer uses TLS, this side does not)."
                : "The frame does not start with the protocol magic.");
        if (source[4] != Version)
            throw Violation(ProtocolErrorCode.UnsupportedVersion, $"Protocol version {source[4]} is not supported (this side speaks {Version}).");
        var type = (FrameType)source[5];
        if (!IsKnown(type))
            throw Violation(ProtocolErrorCode.UnexpectedFrameType, $"Unknown frame type {source[5]}.");
        if (BinaryPrimitives.ReadUInt16LittleEndian(source[6..]) != 0)
            throw Violation(ProtocolErrorCode.MalformedPayload, $"Frame flags must be zero in protocol version {Version}.");
        uint length = BinaryPrimitives.ReadUInt32LittleEndian(source[8..]);
        if (length > (uint)maxPayload)
            throw Violation(ProtocolErrorCode.FrameTooLarge, $"A {type} frame claims {length} payload bytes; the limit is {maxPayload}.");
        return new FrameHeader(type, (int)length, BinaryPrimitives.ReadUInt64LittleEndian(source[12..]));
    }

    public static DisaggProtocolException Violation(ProtocolErrorCode code, string message) => new(code, message);

    /// <summary>Checks a Ping: connection-level and empty. Either side may send one at any time after the handshake.</summary>
    public static void CheckPing(FrameHeader header)
    {
        if (header.StreamId != 0 || header.PayloadLength != 0)
            throw Violation(ProtocolErrorCode.MalformedPayload, "A Ping frame has stream id 0 and no payload.");
    }

    // ------------------------------------------------------------------ handshake

    public static void WriteHello(Span<byte> p, ReadOnlySpan<byte> clientNonce, int maxPayload)
    {
        clientNonce.CopyTo(p);
        BinaryPrimitives.WriteInt32LittleEndian(p[NonceSize..], maxPayload);
    }

    public const int HelloSize = NonceSize + 4;

    public static int ReadHello(ReadOnlySpan<byte> p, Span<byte> clientNonce)
    {
        Expect(p, HelloSize, FrameType.Hello);
        p[..NonceSize].CopyTo(clientNonce);
        return ReadFrameLimit(p[NonceSize..]);
    }

    public const int ChallengeSize = NonceSize + MacSize + 4;

    public static void WriteChallenge(Span<byte> p, ReadOnlySpan<byte> serverNonce, ReadOnlySpan<byte> serverMac, int maxPayload)
    {
        serverNonce.CopyTo(p);
        serverMac.CopyTo(p[NonceSize..]);
        BinaryPrimitives.WriteInt32LittleEndian(p[(NonceSize + MacSize)..], maxPayload);
    }

    public static int ReadChallenge(ReadOnlySpan<byte> p, Span<byte> serverNonce, Span<byte> serverMac)
    {
        Expect(p, ChallengeSize, FrameType.Challenge);
        p[..NonceSize].CopyTo(serverNonce);
        p.Slice(NonceSize, MacSize).CopyTo(serverMac);
        return ReadFrameLimit(p[(NonceSize + MacSize)..]);
    }

    private static int ReadFrameLimit(ReadOnlySpan<byte> p)
    {
        int limit = BinaryPrimitives.ReadInt32LittleEndian(p);
        if (limit < (64 << 10) || limit > (64 << 20))
            throw Violation(ProtocolErrorCode.MalformedPayload, $"The peer's frame limit {limit} is outside [64 KiB, 64 MiB].");
        return limit;
    }

    /// <summary>The fixed part of Ready; then the direct-transfer descriptor: byte length i32 (0 = none) and the bytes.</summary>
    public const int ReadyFixedSize = 4 * 4 + 1 + 4 + 4 * 4;

    /// <summary>Largest direct-transfer descriptor a Ready frame may carry (it must also fit the handshake payload limit).</summary>
    public const int MaxDescriptorBytes = HandshakePayloadLimit - ReadyFixedSize - 4;

    public static int ReadySize(byte[]? descriptor) => ReadyFixedSize + 4 + (descriptor?.Length ?? 0);

    public static void WriteReady(Span<byte> p, KvCacheLayout layout, int maxContextLength, EngineLoad load, byte[]? descriptor)
    {
        BinaryPrimitives.WriteInt32LittleEndian(p, layout.NumLayers);
        BinaryPrimitives.WriteInt32LittleEndian(p[4..], layout.NumKvHeads);
        BinaryPrimitives.WriteInt32LittleEndian(p[8..], layout.HeadDim);
        BinaryPrimitives.WriteInt32LittleEndian(p[12..], layout.BlockSize);
        p[16] = (byte)layout.DataType;
        BinaryPrimitives.WriteInt32LittleEndian(p[17..], maxContextLength);
        WriteLoad(p[21..], load);
        BinaryPrimitives.WriteInt32LittleEndian(p[ReadyFixedSize..], descriptor?.Length ?? 0);
        descriptor?.CopyTo(p[(ReadyFixedSize + 4)..]);
    }

    public static (KvCacheLayout Layout, int MaxContextLength, EngineLoad Load, byte[]? Descriptor) ReadReady(ReadOnlySpan<byte> p)
    {
        if (p.Length < ReadyFixedSize + 4) throw Malformed(FrameType.Ready);
        int descriptorLength = I32(p, ReadyFixedSize);
        if (descriptorLength < 0 || descriptorLength > MaxDescriptorBytes || p.Length != ReadyFixedSize + 4 + descriptorLength)
            throw Malformed(FrameType.Ready);
        try
        {
            var layout = new KvCacheLayout(I32(p, 0), I32(p, 4), I32(p, 8), I32(p, 12), (KvDataType)p[16]);
            int maxContext = I32(p, 17);
            if (maxContext < 1) throw new ArgumentOutOfRangeException(nameof(p), "Non-positive context length.");
            byte[]? descriptor = descriptorLength == 0 ? null : p.Slice(ReadyFixedSize + 4, descriptorLength).ToArray();
            return (layout, maxContext, ReadLoad(p.Slice(21, LoadSize)), descriptor);
        }
        catch (ArgumentException ex)
        {
            throw new DisaggProtocolException(ProtocolErrorCode.MalformedPayload, $"Invalid engine description: {ex.Message}", inner: ex);
        }
    }

    // ------------------------------------------------------------------ load, errors, tokens, acks

    public const int LoadSize = 16;

    public static void WriteLoad(Span<byte> p, EngineLoad load)
    {
        BinaryPrimitives.WriteInt32LittleEndian(p, load.WaitingRequests);
        BinaryPrimitives.WriteInt32LittleEndian(p[4..], load.RunningSequences);
        BinaryPrimitives.WriteInt32LittleEndian(p[8..], load.FreeKvBlocks);
        BinaryPrimitives.WriteInt32LittleEndian(p[12..], load.TotalKvBlocks);
    }

    public static EngineLoad ReadLoad(ReadOnlySpan<byte> p)
    {
        Expect(p, LoadSize, FrameType.Load);
        return new EngineLoad(I32(p, 0), I32(p, 4), I32(p, 8), I32(p, 12));
    }

    public static int ErrorSize(string message) => 4 + Math.Min(Encoding.UTF8.GetByteCount(message), MaxErrorMessageBytes);

    public static void WriteError(Span<byte> p, ProtocolErrorCode code, string message)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(p, (ushort)code);
        var text = p[4..];
        int n;
        if (Encoding.UTF8.GetByteCount(message) <= MaxErrorMessageBytes) n = Encoding.UTF8.GetBytes(message, text);
        else
        {
            // Cut on a character boundary so the peer can decode it.
            var encoder = Encoding.UTF8.GetEncoder();
            encoder.Convert(message, text[..MaxErrorMessageBytes], flush: true, out _, out n, out _);
        }
        BinaryPrimitives.WriteUInt16LittleEndian(p[2..], (ushort)n);
    }

    public static (ProtocolErrorCode Code, string Message) ReadError(ReadOnlySpan<byte> p)
    {
        if (p.Length < 4) throw Malformed(FrameType.Error);
        int n = BinaryPrimitives.ReadUInt16LittleEndian(p[2..]);
        if (n > MaxErrorMessageBytes || p.Length != 4 + n) throw Malformed(FrameType.Error);
        var code = (ProtocolErrorCode)BinaryPrimitives.ReadUInt16LittleEndian(p);
        if (!Enum.IsDefined(code)) code = ProtocolErrorCode.RemoteFailure;
        return (code, Encoding.UTF8.GetString(p.Slice(4, n)));
    }

    public static void WriteToken(Span<byte> p, in GeneratedToken token)
    {
        BinaryPrimitives.WriteInt32LittleEndian(p, token.TokenId);
        BinaryPrimitives.WriteInt32LittleEndian(p[4..], token.Index);
        p[8] = token.Finish is { } reason ? (byte)((int)reason + 1) : (byte)0;
    }

    /// <summary>Reads a token; its timestamp is the local receive time (the sender's clock means nothing here).</summary>
    public static GeneratedToken ReadToken(ReadOnlySpan<byte> p, FrameType type)
    {
        Expect(p, TokenPayloadSize, type);
        int id = I32(p, 0), index = I32(p, 4);
        if (id < 0 || index < 0) throw Malformed(type);
        FinishReason? finish = null;
        if (p[8] != 0)
        {
            var reason = (FinishReason)(p[8] - 1);
            if (!Enum.IsDefined(reason)) throw Malformed(type);
            finish = reason;
        }
        return new GeneratedToken(id, index, System.Diagnostics.Stopwatch.GetTimestamp(), finish);
    }

    public const int TransferAckSize = 12;

    public static void WriteTransferAck(Span<byte> p, int blocks, long bytes)
    {
        BinaryPrimitives.WriteInt32LittleEndian(p, blocks);
        BinaryPrimitives.WriteInt64LittleEndian(p[4..], bytes);
    }

    public static (int Blocks, long Bytes) ReadTransferAck(ReadOnlySpan<byte> p)
    {
        Expect(p, TransferAckSize, FrameType.TransferAck);
        return (I32(p, 0), BinaryPrimitives.ReadInt64LittleEndian(p[4..]));
    }

    // ------------------------------------------------------------------ reserve

    /// <summary>The request as it crosses the wire: id, seed, sampling parameters and prompt.</summary>
    public static int ReserveSize(InferenceRequest request)
    {
        var s = request.Sampling;
        int size = 16 + 8 + 4 + 4 + 4 + 4 * 4 + 4 + 1 + 4 + 4 * s.StopTokenIds.Count + 4 + 4 + 4 * request.PromptTokens.Length;
        foreach (var str in s.StopStrings) size += 4 + Encoding.UTF8.GetByteCount(str);
        return size;
    }

    public static void WriteReserve(Span<byte> p, InferenceRequest request)
    {
        var s = request.Sampling;
        request.Id.Value.TryWriteBytes(p);
        int o = 16;
        BinaryPrimitives.WriteUInt64LittleEndian(p[o..], request.Seed); o += 8;
        BinaryPrimitives.WriteSingleLittleEndian(p[o..], s.Temperature); o += 4;
        BinaryPrimitives.WriteInt32LittleEndian(p[o..], s.TopK); o += 4;
        BinaryPrimitives.WriteSingleLittleEndian(p[o..], s.TopP); o += 4;
        BinaryPrimitives.WriteSingleLittleEndian(p[o..], s.MinP); o += 4;
        BinaryPrimitives.WriteSingleLittleEndian(p[o..], s.RepetitionPenalty); o += 4;
        BinaryPrimitives.WriteSingleLittleEndian(p[o..], s.PresencePenalty); o += 4;
        BinaryPrimitives.WriteSingleLittleEndian(p[o..], s.FrequencyPenalty); o += 4;
        BinaryPrimitives.WriteInt32LittleEndian(p[o..], s.MaxTokens); o += 4;
        p[o++] = s.IgnoreEndOfSequence ? (byte)1 : (byte)0;
        BinaryPrimitives.WriteInt32LittleEndian(p[o..], s.StopTokenIds.Count); o += 4;
        foreach (int id in s.StopTokenIds) { BinaryPrimitives.WriteInt32LittleEndian(p[o..], id); o += 4; }
        BinaryPrimitives.WriteInt32LittleEndian(p[o..], s.StopStrings.Count); o += 4;
        foreach (var str in s.StopStrings)
        {
            int n = Encoding.UTF8.GetBytes(str, p[(o + 4)..]);
            BinaryPrimitives.WriteInt32LittleEndian(p[o..], n);
            o += 4 + n;
        }
        var prompt = request.PromptTokens.Span;
        BinaryPrimitives.WriteInt32LittleEndian(p[o..], prompt.Length); o += 4;
        WriteInts(p[o..], prompt);
    }

    /// <summary>Decodes a request. Its seed is carried in <see cref="SamplingParameters.Seed"/> so the decode side samples the same stream.</summary>
    public static InferenceRequest ReadReserve(ReadOnlySpan<byte> p)
    {
        var r = new Reader(p, FrameType.Reserve);
        var id = new Guid(r.Bytes(16));
        ulong seed = r.U64();
        float temperature = r.F32();
        int topK = r.I32();
        float topP = r.F32();
        float minP = r.F32(), repetitionPenalty = r.F32(), presencePenalty = r.F32(), frequencyPenalty = r.F32();
        int maxTokens = r.I32();
        byte flags = r.U8();
        if (flags > 1) throw Malformed(FrameType.Reserve);
        var stopIds = r.Ints(r.Count(4));
        int stopStringCount = r.Count(4);
        var stopStrings = new string[stopStringCount];
        for (int i = 0; i < stopStringCount; i++)
        {
            try { stopStrings[i] = new UTF8Encoding(false, true).GetString(r.Bytes(r.Count(1))); }
            catch (DecoderFallbackException) { throw Malformed(FrameType.Reserve); }
        }
        var prompt = r.Ints(r.Count(4));
        r.End();
        var sampling = new SamplingParameters
        {
            Temperature = temperature, TopK = topK, TopP = topP, MinP = minP, RepetitionPenalty = repetitionPenalty,
            PresencePenalty = presencePenalty, FrequencyPenalty = frequencyPenalty, MaxTokens = maxTokens, Seed = seed,
            IgnoreEndOfSequence = flags == 1, StopTokenIds = stopIds, StopStrings = stopStrings,
        };
        return new InferenceRequest(prompt, sampling, new RequestId(id));
    }

    public static int ReservedSize(int blockCount) => 12 + 4 * blockCount;

    public static void WriteReserved(Span<byte> p, int cachedTokens, int sequenceLength, ReadOnlySpan<int> blockIds)
    {
        BinaryPrimitives.WriteInt32LittleEndian(p, cachedTokens);
        BinaryPrimitives.WriteInt32LittleEndian(p[4..], sequenceLength);
        BinaryPrimitives.WriteInt32LittleEndian(p[8..], blockIds.Length);
        WriteInts(p[12..], blockIds);
    }

    public static (int CachedTokens, int SequenceLength, int[] BlockIds) ReadReserved(ReadOnlySpan<byte> p)
    {
        var r = new Reader(p, FrameType.Reserved);
        int cached = r.I32(), length = r.I32();
        var ids = r.Ints(r.Count(4));
        r.End();
        return (cached, length, ids);
    }

    // ------------------------------------------------------------------ KV blocks

    public static int BlocksSize(int blockCount, long bytesPerBlockPerLayer) =>
        checked((int)(BlocksFixedBytes + 4L * blockCount + blockCount * bytesPerBlockPerLayer));

    /// <summary>Writes a block frame's payload: layer, count, remote block ids, then the data (read by <paramref name="fill"/>
    /// straight into the frame, no intermediate copy), then an XxHash3 of everything before the checksum.</summary>
    public static void WriteBlocks<TState>(Span<byte> p, int layer, ReadOnlySpan<int> blockIds, TState state, SpanFiller<TState> fill)
    {
        BinaryPrimitives.WriteInt32LittleEndian(p, layer);
        BinaryPrimitives.WriteInt32LittleEndian(p[4..], blockIds.Length);
        WriteInts(p[8..], blockIds);
        var data = p[(8 + 4 * blockIds.Length)..^8];
        fill(state, data);
        BinaryPrimitives.WriteUInt64LittleEndian(p[^8..], XxHash3.HashToUInt64(p[..^8]));
    }

    /// <summary>Validates a block frame's shape and checksum; returns the layer and the block count. The ids are at
    /// <c>p.Slice(8, 4 * count)</c> (see <see cref="BlockIdBytes"/>), the data at <see cref="BlockData(ReadOnlySpan{byte}, int)"/>.</summary>
    public static (int Layer, int Count) ReadBlocks(ReadOnlySpan<byte> p, KvCacheLayout layout)
    {
        if (p.Length < BlocksFixedBytes) throw Malformed(FrameType.Blocks);
        int layer = I32(p, 0), count = I32(p, 4);
        CheckBlocksShape(layer, count, p.Length, layout);
        CheckBlocksChecksum(XxHash3.HashToUInt64(p[..^8]), p[^8..], layer, count);
        return (layer, count);
    }

    /// <summary><see cref="ReadBlocks(ReadOnlySpan{byte}, KvCacheLayout)"/> over a payload that may span several receive
    /// segments: the checksum runs over the segments in place, so the data is never joined into one buffer.</summary>
    public static (int Layer, int Count) ReadBlocks(in ReadOnlySequence<byte> p, KvCacheLayout layout)
    {
        if (p.IsSingleSegment) return ReadBlocks(p.FirstSpan, layout);
        if (p.Length < BlocksFixedBytes) throw Malformed(FrameType.Blocks);
        Span<byte> head = stackalloc byte[8];
        p.Slice(0, 8).CopyTo(head);
        int layer = I32(head, 0), count = I32(head, 4);
        CheckBlocksShape(layer, count, p.Length, layout);
        var hash = t_hash ??= new XxHash3();
        hash.Reset();
        foreach (var segment in p.Slice(0, p.Length - 8)) hash.Append(segment.Span);
        Span<byte> sent = stackalloc byte[8];
        p.Slice(p.Length - 8).CopyTo(sent);
        CheckBlocksChecksum(hash.GetCurrentHashAsUInt64(), sent, layer, count);
        return (layer, count);
    }

    private static void CheckBlocksShape(int layer, int count, long length, KvCacheLayout layout)
    {
        if ((uint)layer >= (uint)layout.NumLayers)
            throw Violation(ProtocolErrorCode.MalformedPayload, $"Layer {layer} is outside [0, {layout.NumLayers}).");
        if (count < 1 || (long)count * (4 + layout.BytesPerBlockPerLayer) + BlocksFixedBytes != length)
            throw Violation(ProtocolErrorCode.MalformedPayload,
                $"A block frame of {length} bytes cannot hold {count} blocks of {layout.BytesPerBlockPerLayer} bytes per layer.");
    }

    private static void CheckBlocksChecksum(ulong computed, ReadOnlySpan<byte> sent, int layer, int count)
    {
        if (computed != BinaryPrimitives.ReadUInt64LittleEndian(sent))
            throw Violation(ProtocolErrorCode.ChecksumMismatch, $"Block frame for layer {layer} ({count} blocks) failed its checksum.");
    }

    [ThreadStatic] private static XxHash3? t_hash; // one per reading thread: ReadBlocks runs synchronously

    /// <summary>A validated block frame's data: <c>count</c> blocks' bytes between the ids and the checksum.</summary>
    public static ReadOnlySequence<byte> BlockData(in ReadOnlySequence<byte> p, int count) => p.Slice(8 + 4 * count, p.Length - 16 - 4 * count);

    public static ReadOnlySpan<byte> BlockIdBytes(ReadOnlySpan<byte> p, int count) => p.Slice(8, 4 * count);

    public static ReadOnlySpan<byte> BlockData(ReadOnlySpan<byte> p, int count) => p[(8 + 4 * count)..^8];

    // ------------------------------------------------------------------ helpers

    public delegate void SpanFiller<in TState>(TState state, Span<byte> destination);

    public static int I32(ReadOnlySpan<byte> p, int offset) => BinaryPrimitives.ReadInt32LittleEndian(p[offset..]);

    public static void WriteInts(Span<byte> destination, ReadOnlySpan<int> values)
    {
        if (BitConverter.IsLittleEndian) MemoryMarshal.AsBytes(values).CopyTo(destination);
        else for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteInt32LittleEndian(destination[(4 * i)..], values[i]);
    }

    private static void Expect(ReadOnlySpan<byte> p, int size, FrameType type)
    {
        if (p.Length != size) throw Malformed(type);
    }

    private static DisaggProtocolException Malformed(FrameType type) =>
        Violation(ProtocolErrorCode.MalformedPayload, $"Malformed {type} frame payload.");

    /// <summary>Bounds-checked little-endian reader over an untrusted payload.</summary>
    private ref struct Reader(ReadOnlySpan<byte> payload, FrameType type)
    {
        private readonly ReadOnlySpan<byte> _p = payload;
        private int _o;

        public ReadOnlySpan<byte> Bytes(int n)
        {
            if (n < 0 || n > _p.Length - _o) throw Malformed(type);
            var s = _p.Slice(_o, n);
            _o += n;
            return s;
        }

        public byte U8() => Bytes(1)[0];
        public int I32() => BinaryPrimitives.ReadInt32LittleEndian(Bytes(4));
        public ulong U64() => BinaryPrimitives.ReadUInt64LittleEndian(Bytes(8));
        public float F32() => BinaryPrimitives.ReadSingleLittleEndian(Bytes(4));

        /// <summary>A count whose elements of <paramref name="elementSize"/> bytes must all be present (checked before any allocation).</summary>
        public int Count(int elementSize)
        {
            int n = I32();
            if (n < 0 || (long)n * elementSize > _p.Length - _o) throw Malformed(type);
            return n;
        }

        public int[] Ints(int n)
        {
            var bytes = Bytes(4 * n);
            var result = new int[n];
            for (int i = 0; i < n; i++) result[i] = BinaryPrimitives.ReadInt32LittleEndian(bytes[(4 * i)..]);
            return result;
        }

        public readonly void End()
        {
            if (_o != _p.Length) throw Malformed(type);
        }
    }
}
