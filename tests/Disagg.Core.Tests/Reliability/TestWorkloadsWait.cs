namespace Disagg.Tests.Reliability;

/// <summary>Polls a condition another thread makes true (bounded; never a timing assumption).</summary>
internal static class TestWorkloadsWait
{
    public static Task Until(Func<bool> condition, string failure) => Until(condition, () => failure);

    public static async Task Until(Func<bool> condition, Func<string> failure)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) Assert.Fail(failure());
            await Task.Delay(1);
        }
    }
}
