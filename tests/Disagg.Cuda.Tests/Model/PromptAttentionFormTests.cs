using Disagg.Cuda.Model;

namespace Disagg.Cuda.Tests.Model;

/// <summary>Which FlashAttention form a prompt chunk after a prefix runs in (the choice only; both forms are checked
/// against float32 attention on a GPU by DeviceCheck --kernel-check).</summary>
public sealed class PromptAttentionFormTests
{
    [Theory]
    [InlineData(512, 7680, 0, false)]   // a short chunk after a long prefix: keys split among CTAs
    [InlineData(64, 4096, 0, false)]
    [InlineData(513, 1513, 0, true)]    // context under 8 times the chunk: packed
    [InlineData(2048, 8192, 0, true)]
    [InlineData(512, 7680, 4096, true)] // sliding windows stay packed
    public void By_default_only_long_contexts_without_a_window_leave_the_packed_form(int queries, int context, int window, bool packed)
    {
        Assert.Null(LlamaModel.PackedPromptAttention);
        Assert.Equal(packed, LlamaModel.PacksPromptChunk(queries, context, window));
    }
}
