namespace OnionDrop.Reliability.Tests;

/// <summary>
/// A seeded byte mutator for fuzzing parsers: bit flips, interesting bytes, deletions, duplications,
/// insertions, truncations and splices with other corpus entries, one to four at a time. Same seed, same
/// inputs, so a failure is replayed by its seed.
/// </summary>
public sealed class Mutator(int seed, IReadOnlyList<byte[]> corpus)
{
    private static readonly byte[] Interesting = [0, 1, 0x7F, 0x80, 0xFF, (byte)'\n', (byte)'\r', (byte)' ', (byte)'"', (byte)'\\', (byte)'+', (byte)'-', (byte)'.', (byte)'=', (byte)'0', (byte)'9'];
    private readonly Random _random = new(seed);

    public byte[] Next()
    {
        var data = new List<byte>(corpus[_random.Next(corpus.Count)]);
        var steps = _random.Next(1, 5);
        for (var s = 0; s < steps; s++) Mutate(data);
        return data.ToArray();
    }

    private void Mutate(List<byte> d)
    {
        int At() => d.Count == 0 ? 0 : _random.Next(d.Count);
        int Span() => _random.Next(1, Math.Max(2, Math.Min(64, d.Count / 4 + 1)));
        switch (_random.Next(9))
        {
            case 0 when d.Count > 0: { var i = At(); d[i] ^= (byte)(1 << _random.Next(8)); break; }
            case 1 when d.Count > 0: d[At()] = Interesting[_random.Next(Interesting.Length)]; break;
            case 2 when d.Count > 0: d[At()] = (byte)_random.Next(256); break;
            case 3 when d.Count > 0: { var i = At(); d.RemoveRange(i, Math.Min(Span(), d.Count - i)); break; }
            case 4 when d.Count > 0: { var i = At(); var n = Math.Min(Span(), d.Count - i); d.InsertRange(At(), d.GetRange(i, n)); break; }
            case 5: { var bytes = new byte[Span()]; _random.NextBytes(bytes); d.InsertRange(At(), bytes); break; }
            case 6 when d.Count > 0: { var at = At(); d.RemoveRange(at, d.Count - at); break; } // truncate
            case 7:
            {
                var other = corpus[_random.Next(corpus.Count)];
                if (other.Length == 0) break;
                var from = _random.Next(other.Length);
                var n = Math.Min(other.Length - from, _random.Next(1, 256));
                var at = At();
                if (d.Count > at) d.RemoveRange(at, Math.Min(n, d.Count - at));
                d.InsertRange(at, other.AsSpan(from, n).ToArray());
                break;
            }
            default: if (d.Count > 1) { int i = At(), j = At(); (d[i], d[j]) = (d[j], d[i]); } break; // swap two bytes
        }
    }
}

/// <summary>Runs one fuzz input with a time limit: a parser must answer (or refuse) quickly, never hang.</summary>
public static class FuzzRun
{
    public static int Iterations(int quick) =>
        int.TryParse(Environment.GetEnvironmentVariable("ONIONDROP_FUZZ_ITERATIONS"), out var n) && n > 0 ? n : quick;

    /// <returns>null when the input was handled or refused cleanly; else what went wrong.</returns>
    public static async Task<string?> OneAsync(Func<Task> parse, Func<Exception, bool> cleanRefusal, TimeSpan limit)
    {
        var run = Task.Run(parse);
        try
        {
            await run.WaitAsync(limit);
            return null;
        }
        catch (TimeoutException) when (!run.IsCompleted) { return $"no answer within {limit} (hang)"; }
        catch (Exception e) when (cleanRefusal(e)) { return null; }
        catch (Exception e) { return $"{e.GetType().FullName}: {e.Message}\n{e.StackTrace}"; }
    }

    /// <summary>Keeps a failing input beside the test results, for replay.</summary>
    public static string Keep(string target, int seed, int iteration, byte[] input)
    {
        var dir = Path.Combine(TestContext.CurrentContext.WorkDirectory, "fuzz-failures");
        Directory.CreateDirectory(dir);
        var path = Path.Combine(dir, $"{target}-seed{seed}-{iteration}.bin");
        File.WriteAllBytes(path, input);
        return path;
    }
}
