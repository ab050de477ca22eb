using Disagg;
using Disagg.Chat;

// Disagg.Chat: an interactive streaming chat, or a scriptable one-shot completion (see ChatOptions.Usage).
ChatOptions options;
try
{
    options = ChatOptions.Parse(args);
}
catch (UsageException e)
{
    Console.Error.WriteLine($"error: {e.Message}\n\n{ChatOptions.Usage}");
    return 2;
}
if (options.Help)
{
    Console.WriteLine(ChatOptions.Usage);
    return 0;
}

try
{
    return await ChatApp.RunAsync(options);
}
catch (UsageException e)
{
    // What the command line asked for, found wrong only on use (a certificate without its key, a missing secret).
    Console.Error.WriteLine($"error: {e.Message}");
    return 2;
}
catch (DisaggException e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    if (ChatTls.Hint(e) is { } hint) Console.Error.WriteLine(hint);
    return 1;
}
catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}
catch (Exception e)
{
    Console.Error.WriteLine($"error: unexpected {e.GetType().Name}: {e.Message}");
    return 1;
}
