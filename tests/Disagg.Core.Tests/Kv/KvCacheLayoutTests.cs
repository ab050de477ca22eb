using Disagg.Kv;

namespace Disagg.Tests.Kv;

public class KvCacheLayoutTests
{
    [Fact]
    public void Bytes_follow_from_the_dimensions()
    {
        // Llama-3-8B: 32 layers, 8 KV heads of 128, bf16, 16-token blocks.
        var layout = new KvCacheLayout(32, 8, 128, 16, KvDataType.BFloat16);
        Assert.Equal(2L * 16 * 8 * 128 * 2, layout.BytesPerBlockPerLayer);
        Assert.Equal(layout.BytesPerBlockPerLayer * 32, layout.BytesPerBlock);
        Assert.Equal(131072L, layout.BytesPerToken); // 128 KiB of KV per token
        Assert.Equal(layout.BytesPerBlock, layout.BytesPerToken * layout.BlockSize);
    }

    [Theory]
    [InlineData(0, 0)]
    [InlineData(1, 1)]
    [InlineData(15, 1)]
    [InlineData(16, 1)]
    [InlineData(17, 2)]
    [InlineData(100_000, 6250)]
    public void BlocksForTokens_rounds_up(int tokens, int blocks)
        => Assert.Equal(blocks, new KvCacheLayout(2, 2, 8, 16, KvDataType.Float32).BlocksForTokens(tokens));

    [Fact]
    public void Invalid_dimensions_are_rejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new KvCacheLayout(0, 1, 1, 1, KvDataType.Float16));
        Assert.Throws<ArgumentOutOfRangeException>(() => new KvCacheLayout(1, 1, 1, -4, KvDataType.Float16));
        Assert.Throws<ArgumentOutOfRangeException>(() => new KvCacheLayout(1, 1, 1, 1, (KvDataType)42));
    }

    [Fact]
    public void EnsureCompatible_names_both_layouts()
    {
        var a = new KvCacheLayout(2, 2, 8, 16, KvDataType.Float32);
        var b = new KvCacheLayout(2, 2, 8, 32, KvDataType.Float32);
        a.EnsureCompatible(new KvCacheLayout(2, 2, 8, 16, KvDataType.Float32));
        var ex = Assert.Throws<KvLayoutMismatchException>(() => a.EnsureCompatible(b));
        Assert.Contains("16 tokens/block", ex.Message);
        Assert.Contains("32 tokens/block", ex.Message);
    }
}
