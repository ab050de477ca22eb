using System.Diagnostics;
using System.Globalization;
using System.Text;
using Disagg.Cuda.Loading;
using Disagg.Text;
using Disagg.Tokenization;

namespace Disagg.Chat;

/// <summary>Loads the model, then answers one prompt or chats until the input ends.</summary>
internal static class ChatApp
{
    public static async Task<int> RunAsync(ChatOptions options)
    {
        if (options.ServeDecode) return await Engines.ServeDecodeAsync(options);
        var clock = Stopwatch.StartNew();
        var tokenizer = ModelTokenizer.Load(options.Model);
        await using var engines = await Engines.CreateAsync(options);
        var generator = new TextGenerator(engines.Engine, tokenizer.AsTextTokenizer(skipSpecialTokens: true));
        var sampling = options.Sampling(tokenizer.EndOfSequenceTokenIds, GenerationConfig.TryLoadFromDirectory(options.Model));
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"[loaded {Path.GetFullPath(options.Model)}: {engines.Description}, in {clock.ElapsedMilliseconds} ms]"));

        if (options.OneShot)
        {
            int[] prompt = options.PromptIds ?? (options.Raw
                ? [.. tokenizer.Encode(options.Prompt!)]
                : [.. tokenizer.Encode(tokenizer.ChatTemplate.Render(Conversation(options.System, [new ChatTurn("user", options.Prompt!)]), addGenerationPrompt: true), addSpecialTokens: false)]);
            await AnswerAsync(generator, prompt, sampling, options.PrintIds, CancellationToken.None);
            return 0;
        }

        await ChatAsync(generator, tokenizer, sampling, options.System);
        return 0;
    }

    private static async Task ChatAsync(TextGenerator generator, ModelTokenizer tokenizer, SamplingParameters sampling, string? system)
    {
        var history = new List<ChatTurn>();
        CancellationTokenSource? answering = null;
        Console.CancelKeyPress += (_, e) =>
        {
            // Ctrl+C stops the answer being written; when idle it quits as usual.
            if (answering is { } cts)
            {
                e.Cancel = true;
                cts.Cancel();
            }
        };
        Console.Error.WriteLine("[type a message; /reset clears the conversation, /exit quits]");
        while (true)
        {
            Console.Error.Write("> ");
            string? line = Console.ReadLine();
            if (line is null || line.Trim() == "/exit") return;
            if (line.Trim() == "/reset")
            {
                history.Clear();
                continue;
            }
            if (line.Trim().Length == 0) continue;

            history.Add(new ChatTurn("user", line));
            var prompt = tokenizer.Encode(tokenizer.ChatTemplate.Render(Conversation(system, history), addGenerationPrompt: true), addSpecialTokens: false);
            using var cts = new CancellationTokenSource();
            answering = cts;
            try
            {
                string answer = await AnswerAsync(generator, [.. prompt], sampling, printIds: false, cts.Token);
                history.Add(new ChatTurn("assistant", answer));
            }
            catch (OperationCanceledException)
            {
                Console.WriteLine();
                Console.Error.WriteLine("[stopped]");
                history.RemoveAt(history.Count - 1);
            }
            catch (InvalidRequestException e)
            {
                Console.Error.WriteLine($"[{e.Message} Use /reset to start over.]");
                history.RemoveAt(history.Count - 1);
            }
            finally
            {
                answering = null;
            }
        }
    }

    /// <summary>Streams one completion to stdout (text, or ids with <paramref name="printIds"/>) and its timings to stderr.</summary>
    private static async Task<string> AnswerAsync(TextGenerator generator, int[] prompt, SamplingParameters sampling, bool printIds, CancellationToken cancellationToken)
    {
        var timings = new RequestTimings(Stopwatch.GetTimestamp());
        var ids = new List<int>();
        var text = new StringBuilder();
        FinishReason? finish = null;
        await foreach (var chunk in generator.GenerateAsync(new InferenceRequest(prompt, sampling), cancellationToken))
        {
            timings.Record(chunk.Token);
            ids.Add(chunk.Token.TokenId);
            text.Append(chunk.Text);
            finish = chunk.Finish;
            if (!printIds)
            {
                Console.Out.Write(chunk.Text);
                Console.Out.Flush();
            }
        }
        Console.Out.WriteLine(printIds ? string.Join(',', ids) : "");
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"[{prompt.Length} prompt tokens, {ids.Count} generated, finish: {finish}; time to first token {timings.TimeToFirstToken?.TotalMilliseconds:F1} ms, " +
            $"inter-token {timings.MeanInterTokenLatency?.TotalMilliseconds:F2} ms, {timings.DecodeTokensPerSecond:F1} tokens/s]"));
        return text.ToString();
    }

    private static List<ChatTurn> Conversation(string? system, IEnumerable<ChatTurn> turns)
    {
        var all = new List<ChatTurn>();
        if (system is not null) all.Add(new ChatTurn("system", system));
        all.AddRange(turns);
        return all;
    }
}
