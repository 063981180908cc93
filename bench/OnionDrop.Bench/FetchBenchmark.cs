using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using OnionDrop.Sealing;
using OnionDrop.Sealing.Interop;
using OnionDrop.Storage;

namespace OnionDrop.Bench;

/// <summary>
/// The journalist's side, measured in one run against the machine's own limits:
/// `oniondrop fetch` of N sealed submissions (1 GiB in all) through a loopback sshd, beside `scp -r` of the
/// same sealed files as plain files over the same sshd; and `oniondrop open` of them all, beside libsodium's
/// raw secretstream decryption of the same number of bytes (memory to memory). Targets: ratios >= 0.8.
/// Usage: oniondrop-bench fetch [--count N] [--total-mib M] [--dir DIR]
/// </summary>
public sealed class FetchBenchmark : IBenchmark
{
    public string Name => "fetch";
    public string Description => "fetch 1,000 submissions (1 GiB) over loopback sshd vs scp; open vs raw secretstream";

    public async Task<int> RunAsync(string[] args)
    {
        int count = 1000, totalMiB = 1024;
        var baseDir = Path.GetTempPath();
        for (var i = 0; i + 1 < args.Length; i += 2)
            switch (args[i])
            {
                case "--count": count = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                case "--total-mib": totalMiB = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                case "--dir": baseDir = args[i + 1]; break;
                default: Console.Error.WriteLine("usage: oniondrop-bench fetch [--count N] [--total-mib M] [--dir DIR]"); return 2;
            }
        var cli = FindCli();
        if (cli is null) { Console.Error.WriteLine("fetch: build the CLI first: dotnet build -c Release src/OnionDrop.Cli"); return 2; }

        var work = Directory.CreateDirectory(Path.Combine(baseDir, $"oniondrop-bench-fetch-{Environment.ProcessId}")).FullName;
        try
        {
            var data = Path.Combine(work, "data");
            var keyFile = Path.Combine(work, "journalist.key");
            using var key = JournalistKey.Generate();
            key.Save(keyFile);
            var size = (int)(totalMiB * 1024L * 1024 / count);

            Console.WriteLine($"fetch: sealing {count} submissions of {size / 1024} KiB into a store...");
            using (var store = SealedBlobStore.Open(data))
                await Parallel.ForEachAsync(Enumerable.Range(0, count), new ParallelOptions { MaxDegreeOfParallelism = 2 }, async (n, ct) =>
                {
                    var plain = new byte[size];
                    new Random(n).NextBytes(plain);
                    await using var writer = store.BeginSubmission();
                    await using (var sealer = new SubmissionSealer(writer.Ciphertext, [key.PublicKey]))
                    {
                        await sealer.BeginFileAsync($"doc-{n}.bin", "application/octet-stream", ct);
                        await sealer.WriteAsync(plain, ct);
                        await sealer.EndFileAsync(ct);
                        await sealer.CompleteAsync(writer.Id, $"message {n}", DateTimeOffset.UtcNow, ct);
                    }
                    await writer.CommitAsync(ct);
                });
            var sealedBytes = Directory.GetFiles(Path.Combine(data, "blobs")).Sum(f => new FileInfo(f).Length);

            using var sshd = await FetchSshd.StartAsync(Path.Combine(work, "ssh"), $"/usr/bin/dotnet {cli} pull --stdio --data-dir {data} --as bench");

            // Baseline: the same sealed files as plain files, copied by scp through the same sshd (before fetch deletes them).
            var scpDir = Path.Combine(work, "scp");
            WarmCache(Path.Combine(data, "blobs"));
            var scp = await TimeAsync("scp", ["-q", "-r", "-P", sshd.Port.ToString(), .. sshd.Options(sshd.PlainKey), $"{sshd.Target}:{Path.Combine(data, "blobs")}", scpDir]);
            var scpCopied = Directory.GetFiles(scpDir).Sum(f => new FileInfo(f).Length);
            if (scpCopied != sealedBytes) throw new InvalidOperationException($"scp copied {scpCopied} of {sealedBytes} bytes");
            Directory.Delete(scpDir, recursive: true);

            var received = Path.Combine(work, "received");
            WarmCache(Path.Combine(data, "blobs"));
            var fetch = await TimeAsync("dotnet", [cli, "fetch", sshd.Target, "-o", received, "--port", sshd.Port.ToString(), .. sshd.Options(sshd.ForcedKey).Select(o => "--ssh-arg=" + o)]);
            var files = Directory.GetFiles(received, "*.sealed");
            if (files.Length != count) throw new InvalidOperationException($"fetch brought {files.Length} of {count}");

            var opened = Path.Combine(work, "opened");
            var open = await TimeAsync("dotnet", [cli, "open", "--key", keyFile, "-o", opened, .. files]);
            var raw = RawSecretStreamSeconds(sealedBytes);

            double Rate(double seconds) => sealedBytes / seconds / 1e6;
            Console.WriteLine();
            Console.WriteLine($"{count} sealed submissions, {sealedBytes / 1048576.0:0} MiB in all, one run on this machine ({Environment.ProcessorCount} cores)");
            Console.WriteLine($"  scp -r of the same files      {Rate(scp),8:0.0} MB/s  ({scp:0.00} s)");
            Console.WriteLine($"  oniondrop fetch               {Rate(fetch),8:0.0} MB/s  ({fetch:0.00} s)   ratio {scp / fetch:0.00} (target >= 0.8)");
            Console.WriteLine($"  raw secretstream decryption   {Rate(raw),8:0.0} MB/s  ({raw:0.00} s, memory to memory)");
            Console.WriteLine($"  oniondrop open (to disk)      {Rate(open),8:0.0} MB/s  ({open:0.00} s)   ratio {raw / open:0.00} (target >= 0.8)");
            return 0;
        }
        finally
        {
            try { Directory.Delete(work, recursive: true); } catch (IOException) { }
        }
    }

    private static string? FindCli()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "OnionDrop.sln")))
                return new[] { "Release", "Debug" } // whichever was built last
                    .Select(c => Path.Combine(dir.FullName, "src", "OnionDrop.Cli", "bin", c, "net10.0", "linux-x64", "oniondrop.dll"))
                    .Where(File.Exists).OrderByDescending(File.GetLastWriteTimeUtc).FirstOrDefault();
        return null;
    }

    /// <summary>Wall-clock seconds of a child process that must succeed.</summary>
    private static async Task<double> TimeAsync(string file, string[] args)
    {
        var psi = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        var clock = Stopwatch.StartNew();
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        var seconds = clock.Elapsed.TotalSeconds;
        if (p.ExitCode != 0) throw new InvalidOperationException($"{file} {args.FirstOrDefault()} exited {p.ExitCode}: {await stderr}");
        await stdout;
        return seconds;
    }

    /// <summary>libsodium's crypto_secretstream pull over <paramref name="bytes"/> in the sealed format's 64 KiB chunks.</summary>
    private static double RawSecretStreamSeconds(long bytes)
    {
        const int chunk = 64 * 1024;
        var key = RandomNumberGenerator.GetBytes(SecretStream.KeyBytes);
        var header = new byte[SecretStream.HeaderBytes];
        var chunks = (int)(bytes / (chunk + SecretStream.ABytes)) + 1;
        var plain = new byte[chunk];
        RandomNumberGenerator.Fill(plain);
        // Encrypt a representative set once (the cost measured is decryption only).
        var cipher = new byte[64][];
        using (var push = SecretStream.InitPush(key, header))
            for (var i = 0; i < cipher.Length; i++)
            {
                cipher[i] = new byte[chunk + SecretStream.ABytes];
                push.Push(plain, cipher[i], default, SecretStream.TagMessage);
            }
        var clock = Stopwatch.StartNew();
        var rounds = 0;
        while (rounds * cipher.Length < chunks)
        {
            using var pull = SecretStream.InitPull(key, header);
            foreach (var c in cipher)
                if (!pull.TryPull(c, plain, default, out _, out _)) throw new InvalidOperationException("secretstream refused its own output");
            rounds++;
        }
        return clock.Elapsed.TotalSeconds * chunks / (rounds * cipher.Length);
    }

    /// <summary>Both transfers read the blobs from the page cache, so neither pays for the disk the other did not.</summary>
    private static void WarmCache(string dir)
    {
        var buffer = new byte[1 << 20];
        foreach (var file in Directory.GetFiles(dir))
        {
            using var f = File.OpenRead(file);
            while (f.Read(buffer) > 0) { }
        }
    }
}
