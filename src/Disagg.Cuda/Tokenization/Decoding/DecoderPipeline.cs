namespace Disagg.Tokenization;

/// <summary>
/// The decoder steps of a tokenizer.json in order. Without steps, HF joins tokens with spaces; that is kept here.
/// </summary>
internal sealed class DecoderPipeline
{
    private readonly DecoderStep[] _steps;

    /// <exception cref="ArgumentException">A step that needs whole tokens follows a step that fuses them.</exception>
    public DecoderPipeline(IReadOnlyList<DecoderStep> steps)
    {
        _steps = [.. steps];
        bool fused = false;
        foreach (var step in _steps)
        {
            if (fused && !step.AcceptsPieces) throw new ArgumentException($"the '{step.GetType().Name}' decoder step cannot follow a step that fuses tokens.", nameof(steps));
            fused |= step.FusesTokens;
        }
    }

    public string Decode(List<string> tokens)
    {
        if (_steps.Length == 0) return string.Join(' ', tokens);
        foreach (var step in _steps) tokens = step.DecodeChain(tokens);
        return string.Concat(tokens);
    }

    public Stream CreateStream() => new(_steps.Select(s => s.CreateStream()).ToArray());

    /// <summary>The steps' streams chained: each token goes through all of them in turn.</summary>
    internal sealed class Stream(DecoderStream[] streams)
    {
        private List<StreamPiece> _current = [];
        private List<StreamPiece> _next = [];
        private bool _started;

        /// <summary>Pushes one token and returns the text that became final.</summary>
        public string Push(string token)
        {
            if (streams.Length == 0)
            {
                string text = _started ? " " + token : token;
                _started = true;
                return text;
            }
            _current.Clear();
            _current.Add(new StreamPiece(token, StartsToken: true));
            return Run(flushFrom: streams.Length);
        }

        /// <summary>Returns what the steps held back and resets them for a new sequence.</summary>
        public string Flush()
        {
            _started = false;
            _current.Clear();
            return Run(flushFrom: 0);
        }

        // Runs the current pieces through every step; steps at or after flushFrom are flushed after their input.
        private string Run(int flushFrom)
        {
            for (int i = 0; i < streams.Length; i++)
            {
                _next.Clear();
                foreach (var piece in _current) streams[i].Push(piece, _next);
                if (i >= flushFrom) streams[i].Flush(_next);
                (_current, _next) = (_next, _current);
            }
            return _current.Count switch
            {
                0 => string.Empty,
                1 => _current[0].Text,
                _ => string.Concat(_current.Select(p => p.Text)),
            };
        }
    }
}
