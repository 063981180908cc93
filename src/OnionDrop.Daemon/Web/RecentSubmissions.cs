using System.Security.Cryptography;

namespace OnionDrop.Daemon.Web;

/// <summary>
/// The one-time tokens of recent forms that became submissions, so that the same form sent again (Refresh or
/// Back then Forward on the receipt, "Try again" after a dropped connection) is answered with its first receipt
/// instead of being stored twice. In memory only, lost at a restart; a token is random, drawn for each form shown
/// and remembered only once its submission is committed. No time is kept with an entry: entries live in two
/// generations, and the older one is dropped when the newer is full or <see cref="Window"/> old, so a token is
/// remembered for one to two windows and at most twice <paramref name="capacity"/> are held.
/// </summary>
public sealed class RecentSubmissions(TimeProvider clock, int capacity = 4096)
{
    public static readonly TimeSpan Window = TimeSpan.FromMinutes(30);

    /// <summary>A form's token: 128 random bits, in hex.</summary>
    public static string NewToken() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));

    public static bool IsToken(string s) => s.Length == 32 && s.All(char.IsAsciiHexDigitLower);

    private readonly Lock _lock = new();
    private Dictionary<string, TaskCompletionSource<ReceivedSubmission?>> _current = [], _previous = [];
    private DateTimeOffset _currentSince = clock.GetUtcNow();

    /// <summary>The receipt of the token's committed submission, if it is remembered.</summary>
    public ReceivedSubmission? Find(string token)
    {
        lock (_lock)
        {
            Rotate();
            return Lookup(token) is { Task.IsCompletedSuccessfully: true } done ? done.Task.Result : null;
        }
    }

    /// <summary>
    /// Before a commit: null when this upload may commit under the token (then <see cref="Complete"/> or
    /// <see cref="Abandon"/> it), else the receipt of the submission already committed under it. Another upload
    /// still committing under the same token is waited for.
    /// </summary>
    public async Task<ReceivedSubmission?> ClaimAsync(string token)
    {
        while (true)
        {
            Task<ReceivedSubmission?> other;
            lock (_lock)
            {
                Rotate();
                if (Lookup(token) is not { } entry)
                {
                    if (_current.Count >= capacity) Drop();
                    _current[token] = new TaskCompletionSource<ReceivedSubmission?>(TaskCreationOptions.RunContinuationsAsynchronously);
                    return null;
                }
                other = entry.Task;
            }
            if (await other is { } earlier) return earlier;
            // That one failed and was abandoned: claim again.
        }
    }

    public void Complete(string token, ReceivedSubmission received)
    {
        lock (_lock) Lookup(token)?.TrySetResult(received);
    }

    public void Abandon(string token)
    {
        lock (_lock)
        {
            var entry = Lookup(token);
            if (!_current.Remove(token)) _previous.Remove(token);
            entry?.TrySetResult(null);
        }
    }

    private TaskCompletionSource<ReceivedSubmission?>? Lookup(string token) =>
        _current.GetValueOrDefault(token) ?? _previous.GetValueOrDefault(token);

    private void Rotate()
    {
        if (clock.GetUtcNow() - _currentSince >= Window) Drop();
    }

    private void Drop()
    {
        // An upload still committing under a dropped token finds nothing to complete; one waiting on it claims again.
        foreach (var entry in _previous.Values) entry.TrySetResult(null);
        (_previous, _current) = (_current, []);
        _currentSince = clock.GetUtcNow();
    }
}
